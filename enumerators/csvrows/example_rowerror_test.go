package csvrows_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/csvrows"
)

// A malformed row stops the enumeration with an error that names its line in
// the file; the rows before it were yielded.
func ExampleRowError() {
	type reading struct {
		Sensor string  `csv:"sensor"`
		Value  float64 `csv:"value"`
	}
	data := "sensor,value\n" +
		"\"north\nwing\",1.5\n" +
		"south,n/a\n"
	e := csvrows.FromReader[reading](strings.NewReader(data), nil, csvrows.Config{})
	items, cursors, err := enumerators.Collect(context.Background(), e)
	fmt.Println(len(items), "row(s) before the error, last cursor", cursors[len(cursors)-1])
	fmt.Println(err)
	// Output:
	// 1 row(s) before the error, last cursor {30 3}
	// csvrows: line 4: column "value": strconv.ParseFloat: parsing "n/a": invalid syntax
}
