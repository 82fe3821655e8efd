package shutdown_test

import (
	"context"
	"fmt"
	"time"

	"github.com/iterjob/iterjob/shutdown"
)

// Stop gives running jobs Timeout to finish, then moves to HardStop by
// itself and cancels the work contexts.
func ExampleController_Stop() {
	ctl, err := shutdown.New(shutdown.Config{Timeout: 50 * time.Millisecond})
	if err != nil {
		panic(err)
	}
	workCtx, cancel := ctl.WorkContext(context.Background())
	defer cancel()

	ctl.Stop()
	fmt.Println(ctl.State(), workCtx.Err())

	<-ctl.Reached(shutdown.HardStop)
	fmt.Println(ctl.State(), workCtx.Err())
	fmt.Println(context.Cause(workCtx))
	// Output:
	// stopping <nil>
	// hard_stop context canceled
	// shutdown: hard stop: shutdown timeout of 50ms passed
}
