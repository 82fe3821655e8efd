package enumerators_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iterjob/iterjob/enumerators"
)

// Stop the job while a replica lags behind; the runner saves the cursor of
// the last item done and runs the job again after Wait.
func ExampleThrottle() {
	ctx := context.Background()
	lagging := false
	e := enumerators.Throttle(enumerators.Range(0, 10, nil), enumerators.ThrottleConfig{
		Pressure: func(context.Context) (bool, error) {
			return lagging, nil // in a real job: query the replication lag
		},
		Wait:       time.Minute,
		CheckEvery: -1, // check before every item (default: at most once a second)
	})

	err := e.Enumerate(ctx, func(item, cursor int64) bool {
		fmt.Println("item", item, "cursor", cursor)
		lagging = item == 2 // the lag starts while item 2 runs
		return true
	})

	var throttled *enumerators.ThrottledError
	if errors.As(err, &throttled) {
		fmt.Println("throttled, retry after", throttled.RetryAfter)
	}
	fmt.Println(errors.Is(err, enumerators.ErrThrottled))
	// Output:
	// item 0 cursor 1
	// item 1 cursor 2
	// item 2 cursor 3
	// throttled, retry after 1m0s
	// true
}
