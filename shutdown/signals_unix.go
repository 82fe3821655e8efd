//go:build unix

package shutdown

import (
	"os"
	"syscall"
)

var handledSignals = []os.Signal{syscall.SIGTSTP, syscall.SIGTERM, syscall.SIGINT, syscall.SIGTTIN}

func classify(sig os.Signal) action {
	switch sig {
	case syscall.SIGTSTP:
		return actQuiet
	case syscall.SIGTERM, syscall.SIGINT:
		return actStop
	case syscall.SIGTTIN:
		return actDump
	default:
		return actIgnore
	}
}

func signalName(sig os.Signal) string {
	switch sig {
	case syscall.SIGTSTP:
		return "SIGTSTP"
	case syscall.SIGTERM:
		return "SIGTERM"
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTTIN:
		return "SIGTTIN"
	default:
		return sig.String()
	}
}
