package enumerators_test

import (
	"context"
	"fmt"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
)

// Process at most five ids, however many runs it takes: the cursor carries
// the count.
func ExampleLimit() {
	ctx := context.Background()
	build := func(c *enumerators.LimitCursor[int64]) enumerators.Enumerator[int64, enumerators.LimitCursor[int64]] {
		return enumerators.Limit(enumerators.Range(100, 1_000_000, c.InnerCursor()), 5, c)
	}

	var saved enumerators.LimitCursor[int64]
	_ = build(nil).Enumerate(ctx, func(id int64, c enumerators.LimitCursor[int64]) bool {
		raw, _ := cursor.Encode(c)
		fmt.Println(id, string(raw))
		saved = c
		return c.Count < 2 // interrupted after two ids
	})

	fmt.Println("resume")
	_ = build(&saved).Enumerate(ctx, func(id int64, c enumerators.LimitCursor[int64]) bool {
		raw, _ := cursor.Encode(c)
		fmt.Println(id, string(raw))
		return true
	})
	// Output:
	// 100 {"inner":101,"count":1}
	// 101 {"inner":102,"count":2}
	// resume
	// 102 {"inner":103,"count":3}
	// 103 {"inner":104,"count":4}
	// 104 {"inner":105,"count":5}
}
