package cursor_test

import (
	"errors"
	"fmt"

	"github.com/iterjob/iterjob/cursor"
)

// Cursors are JSON; a stored cursor of the wrong shape is a clear error.
func ExampleDecode() {
	type page struct {
		LastID int64  `json:"last_id"`
		Region string `json:"region"`
	}
	raw, _ := cursor.Encode(page{LastID: 9007199254740993, Region: "eu-west"})
	fmt.Println(string(raw))

	back, _ := cursor.Decode[page](raw)
	fmt.Println(back.LastID)

	_, err := cursor.Decode[page]([]byte(`{"offset":40}`))
	fmt.Println(errors.Is(err, cursor.ErrInvalid))
	fmt.Println(err)
	// Output:
	// {"last_id":9007199254740993,"region":"eu-west"}
	// 9007199254740993
	// true
	// cursor: stored cursor {"offset":40} does not decode into cursor_test.page: json: unknown field "offset"
}
