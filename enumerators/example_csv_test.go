package enumerators_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
)

// A job imports orders from a CSV file. The first run processes two rows and
// is interrupted; the runner saved the cursor after the second row. The next
// run builds the enumerator from that cursor: it reads the header, seeks to
// the saved offset and goes on with the third row.
func ExampleCSV_resume() {
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
	first := enumerators.CSV[order](strings.NewReader(data), nil, enumerators.CSVConfig{})
	_ = first.Enumerate(ctx, func(o order, c enumerators.CSVCursor) bool {
		fmt.Printf("run 1: order %d %q\n", o.ID, o.Item)
		saved, _ = cursor.Encode(c)
		return o.ID < 2
	})
	fmt.Println("saved cursor:", string(saved))

	// Second run: resumed from the saved cursor.
	from, _ := cursor.Decode[enumerators.CSVCursor](saved)
	rest := enumerators.CSV[order](strings.NewReader(data), from, enumerators.CSVConfig{})
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

// A malformed row stops the enumeration with an error that names its line in
// the file; the rows before it were yielded.
func ExampleCSVRowError() {
	type reading struct {
		Sensor string  `csv:"sensor"`
		Value  float64 `csv:"value"`
	}
	data := "sensor,value\n" +
		"\"north\nwing\",1.5\n" +
		"south,n/a\n"
	e := enumerators.CSV[reading](strings.NewReader(data), nil, enumerators.CSVConfig{})
	items, cursors, err := enumerators.Collect(context.Background(), e)
	fmt.Println(len(items), "row(s) before the error, last cursor", cursors[len(cursors)-1])
	fmt.Println(err)
	// Output:
	// 1 row(s) before the error, last cursor {30 3}
	// enumerators: csv line 4: column "value": strconv.ParseFloat: parsing "n/a": invalid syntax
}
