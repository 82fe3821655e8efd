//go:build !unix && !plan9

package shutdown

import (
	"os"
	"syscall"
)

// Windows, js and wasip1 have no SIGTSTP or SIGTTIN: only the interrupt
// (Ctrl-C) and SIGTERM (on Windows, a console close, logoff or shutdown).
var handledSignals = []os.Signal{syscall.SIGTERM, syscall.SIGINT}

func classify(sig os.Signal) action {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT:
		return actStop
	default:
		return actIgnore
	}
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	default:
		return sig.String()
	}
}
