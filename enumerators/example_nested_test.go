package enumerators_test

import (
	"context"
	"fmt"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
)

// For each order, enumerate its lines. The cursor holds the position among
// orders, the order's key and the position among its lines.
func ExampleNested() {
	ctx := context.Background()
	orders := []string{"order-1", "order-2", "order-3"}
	lines := map[string][]string{
		"order-1": {"apples", "pears"},
		"order-2": {}, // no lines: yields nothing
		"order-3": {"plums", "figs"},
	}
	build := func(c *enumerators.NestedCursor[int, int]) enumerators.Enumerator[enumerators.NestedItem[string, string], enumerators.NestedCursor[int, int]] {
		return enumerators.Nested(c,
			func(_ context.Context, oc *int) (enumerators.Enumerator[string, int], error) {
				return enumerators.Slice(orders, oc), nil
			},
			func(_ context.Context, order string, ic *int) (enumerators.Enumerator[string, int], error) {
				return enumerators.Slice(lines[order], ic), nil
			},
			func(order string) string { return order }, // the order's identity
			nil)
	}

	var saved enumerators.NestedCursor[int, int]
	_ = build(nil).Enumerate(ctx, func(it enumerators.NestedItem[string, string], c enumerators.NestedCursor[int, int]) bool {
		raw, _ := cursor.Encode(c)
		fmt.Println(it.Outer, it.Inner, string(raw))
		saved = c
		return it.Inner != "plums" // interrupted after plums
	})

	fmt.Println("resume")
	_ = build(&saved).Enumerate(ctx, func(it enumerators.NestedItem[string, string], c enumerators.NestedCursor[int, int]) bool {
		raw, _ := cursor.Encode(c)
		fmt.Println(it.Outer, it.Inner, string(raw))
		return true
	})
	// Output:
	// order-1 apples {"key":"order-1","inner":1}
	// order-1 pears {"outer":1}
	// order-3 plums {"outer":2,"key":"order-3","inner":1}
	// resume
	// order-3 figs {"outer":3}
}
