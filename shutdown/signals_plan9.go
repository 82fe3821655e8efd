//go:build plan9

package shutdown

import "os"

// Plan 9 has notes rather than signals; only the interrupt note is handled.
var handledSignals = []os.Signal{os.Interrupt}

func classify(sig os.Signal) action {
	if sig == os.Interrupt {
		return actStop
	}
	return actIgnore
}

func signalName(sig os.Signal) string {
	if sig == os.Interrupt {
		return "SIGINT"
	}
	return sig.String()
}
