package pg_test

import (
	"io"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/testutil"
)

// runExample runs an example that needs PostgreSQL and returns what it
// printed. It swaps os.Stdout, so its tests do not run in parallel.
func runExample(t *testing.T, example func()) string {
	t.Helper()
	testutil.Postgres(t) // skips, or fails under CI, when PostgreSQL is unreachable
	r, w, err := os.Pipe()
	require.NoError(t, err)
	stdout := os.Stdout
	os.Stdout = w
	printed := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		printed <- string(b)
	}()
	func() {
		defer func() { os.Stdout = stdout; _ = w.Close() }()
		example()
	}()
	return <-printed
}

func TestExampleEnqueueTx(t *testing.T) {
	require.Equal(t, `staged welcome email for ada, committed
staged welcome email for bob, rolled back
sent welcome email to ada
outbox rows left: 0
`, runExample(t, ExampleEnqueueTx))
}

func TestExampleNewWorkflow(t *testing.T) {
	require.Equal(t, `reserve: order 42 reserved
charge attempt 1: charged ch_1, then the step failed
charge attempt 2: the payment service returned ch_1 again
ship: staged the shipping job; awaiting it
shipping order 42
notify: order 42 shipped, charge ch_1
workflow succeeded; charges made: 1
same key again, same id: true
`, runExample(t, ExampleNewWorkflow))
}

func TestExampleTransactional(t *testing.T) {
	require.Equal(t, `run 1 crashed after 2 batches; committed cursor {"key": ["8"]}
run 2 completed after 3 batches
accounts credited once: 20 of 20
`, runExample(t, ExampleTransactionalBatches))
}
