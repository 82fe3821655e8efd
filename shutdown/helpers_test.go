package shutdown_test

import (
	"encoding/json"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/iterjob/iterjob/shutdown"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitLimit bounds every wait on a channel, so a broken controller fails the
// test instead of hanging it. It is never a guess at how long something
// takes: the waits return as soon as the event happens.
const waitLimit = 10 * time.Second

type bundle struct {
	ctl *shutdown.Controller
	log *logCapture
}

// setup returns a controller logging to a capture. A zero cfg.Timeout is
// replaced with an hour, so that no test reaches HardStop by deadline unless
// it asks for a short timeout.
func setup(t *testing.T, cfg shutdown.Config) *bundle {
	t.Helper()
	log := newLogCapture()
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Hour
	}
	cfg.Logger = slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ctl, err := shutdown.New(cfg)
	require.NoError(t, err)
	return &bundle{ctl: ctl, log: log}
}

// logCapture is an io.Writer for slog.NewJSONHandler, which writes each
// record with one Write call. It keeps the records and hands them to
// waitFor as they arrive.
type logCapture struct {
	mu      sync.Mutex
	records []map[string]any
	arrived chan struct{} // receives after each record, never blocking
}

func newLogCapture() *logCapture {
	return &logCapture{arrived: make(chan struct{}, 1)}
}

func (l *logCapture) Write(p []byte) (int, error) {
	var rec map[string]any
	if err := json.Unmarshal(p, &rec); err != nil {
		return 0, err
	}
	l.mu.Lock()
	l.records = append(l.records, rec)
	l.mu.Unlock()
	select {
	case l.arrived <- struct{}{}:
	default:
	}
	return len(p), nil
}

// find returns the records with message msg logged so far.
func (l *logCapture) find(msg string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, r := range l.records {
		if r["msg"] == msg {
			out = append(out, r)
		}
	}
	return out
}

// waitFor returns the first record with message msg, waiting for it to be
// logged.
func (l *logCapture) waitFor(t *testing.T, msg string) map[string]any {
	t.Helper()
	limit := time.After(waitLimit)
	for {
		if recs := l.find(msg); len(recs) > 0 {
			return recs[0]
		}
		select {
		case <-l.arrived:
		case <-limit:
			require.FailNow(t, "no log record", "message %q never logged", msg)
		}
	}
}

// waitClosed fails the test unless ch is closed within waitLimit.
func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(waitLimit):
		require.FailNow(t, "not closed", "%s never happened", what)
	}
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// reached reports, for Quiet, Stopping and HardStop, whether the channel of
// that state is closed.
func reached(ctl *shutdown.Controller) [3]bool {
	return [3]bool{
		isClosed(ctl.Reached(shutdown.Quiet)),
		isClosed(ctl.Reached(shutdown.Stopping)),
		isClosed(ctl.Reached(shutdown.HardStop)),
	}
}
