package shutdown_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/iterjob/iterjob/shutdown"
)

// Fetching ends at Quiet; work goes on until HardStop. The causes say why.
func ExampleController_FetchContext() {
	ctl, err := shutdown.New(shutdown.Config{})
	if err != nil {
		panic(err)
	}
	fetchCtx, cancelFetch := ctl.FetchContext(context.Background())
	defer cancelFetch()
	workCtx, cancelWork := ctl.WorkContext(context.Background())
	defer cancelWork()

	ctl.Quiet()
	fmt.Println("fetch:", context.Cause(fetchCtx))
	fmt.Println("work:", workCtx.Err())

	ctl.HardStop()
	fmt.Println("work:", context.Cause(workCtx))
	fmt.Println(errors.Is(context.Cause(workCtx), shutdown.ErrHardStop))
	// Output:
	// fetch: shutdown: quiet
	// work: <nil>
	// work: shutdown: hard stop
	// true
}
