package csvrows_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/csvrows"
)

// A job imports orders from a CSV file. The first run processes two rows and
// is interrupted; the runner saved the cursor after the second row. The next
// run builds the enumerator from that cursor: it reads the header, seeks to
// the saved offset and goes on with the third row.
func ExampleFromReader_resume() {
	type order struct {
		ID    int     `csv:"id"`
		Item  string  `csv:"item"`
		Total float64 `csv:"total"`
	}
	data := "id,item,total\n" +
		"1,\"Tea, green\",4.5\n" +
		"2,\"Mug,\nlarge\",12\n" + // a quoted field with a line break
		"3,Café,3.2\n" +
		"4,\"Spoon \"\"silver\"\"\",7\n"
	ctx := context.Background()

	// First run: stopped after two rows.
	var saved []byte
	first := csvrows.FromReader[order](strings.NewReader(data), nil, csvrows.Config{})
	_ = first.Enumerate(ctx, func(o order, c csvrows.Cursor) bool {
		fmt.Printf("run 1: order %d %q\n", o.ID, o.Item)
		saved, _ = cursor.Encode(c)
		return o.ID < 2
	})
	fmt.Println("saved cursor:", string(saved))

	// Second run: resumed from the saved cursor.
	from, _ := cursor.Decode[csvrows.Cursor](saved)
	rest := csvrows.FromReader[order](strings.NewReader(data), from, csvrows.Config{})
	seq, finish := enumerators.All(ctx, rest)
	for o, c := range seq {
		fmt.Printf("run 2: order %d %q %.2f, ends on line %d\n", o.ID, o.Item, o.Total, c.Line)
	}
	if err := finish(); err != nil {
		fmt.Println("error:", err)
	}
	// Output:
	// run 1: order 1 "Tea, green"
	// run 1: order 2 "Mug,\nlarge"
	// saved cursor: {"offset":51,"line":4}
	// run 2: order 3 "Café" 3.20, ends on line 5
	// run 2: order 4 "Spoon \"silver\"" 7.00, ends on line 6
}
