package shutdown_test

import (
	"fmt"

	"github.com/iterjob/iterjob/shutdown"
)

// The state moves forward only, and each move is made once: later calls
// report false and change nothing.
func ExampleController_Quiet() {
	ctl, err := shutdown.New(shutdown.Config{})
	if err != nil {
		panic(err)
	}
	fmt.Println(ctl.State())
	fmt.Println("quiet:", ctl.Quiet(), ctl.State())
	fmt.Println("stop:", ctl.Stop(), ctl.State())
	fmt.Println("quiet again:", ctl.Quiet(), ctl.State())
	fmt.Println("hard stop:", ctl.HardStop(), ctl.State())

	// A runner checks the state after every item: one atomic load.
	if ctl.State() >= shutdown.Quiet {
		fmt.Println("interrupt the job at this item")
	}
	// Output:
	// running
	// quiet: true quiet
	// stop: true stopping
	// quiet again: false stopping
	// hard stop: true hard_stop
	// interrupt the job at this item
}
