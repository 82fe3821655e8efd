package enumerators_test

import (
	"context"
	"fmt"

	"github.com/iterjob/iterjob/enumerators"
)

// Process ids ten at a time (here four): each batch comes with the cursor of
// its last item, so an interrupted job resumes at the next whole batch.
func ExampleBatches() {
	ctx := context.Background()
	build := func(cursor *int64) enumerators.Enumerator[[]int64, int64] {
		return enumerators.Batches(enumerators.Range(0, 10, cursor), 4)
	}

	var saved int64
	_ = build(nil).Enumerate(ctx, func(batch []int64, cursor int64) bool {
		fmt.Println("batch", batch, "cursor", cursor)
		saved = cursor
		return cursor < 4 // stop after the first batch, as an interruption would
	})

	fmt.Println("resume from", saved)
	_ = build(&saved).Enumerate(ctx, func(batch []int64, cursor int64) bool {
		fmt.Println("batch", batch, "cursor", cursor)
		return true
	})
	// Output:
	// batch [0 1 2 3] cursor 4
	// resume from 4
	// batch [4 5 6 7] cursor 8
	// batch [8 9] cursor 10
}
