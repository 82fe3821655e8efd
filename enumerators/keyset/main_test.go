package keyset_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: the
// prefetch of the next page runs in a goroutine of its own, which an
// enumeration must wait for however it ends.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
