package shutdown_test

import (
	"fmt"

	"github.com/iterjob/iterjob/shutdown"
)

// Finish ends the shutdown once everything has stopped: the timeout no
// longer runs, so no hard stop comes (and none is logged) after the work is
// gone.
func ExampleController_Finish() {
	ctl, err := shutdown.New(shutdown.Config{})
	if err != nil {
		panic(err)
	}
	ctl.Stop()
	_, pending := ctl.Deadline()
	fmt.Println(ctl.State(), "deadline pending:", pending)

	// ... every runner following ctl has stopped ...
	ctl.Finish()
	_, pending = ctl.Deadline()
	fmt.Println(ctl.State(), "deadline pending:", pending)
	// Output:
	// stopping deadline pending: true
	// stopping deadline pending: false
}
