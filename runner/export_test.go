package runner

// Test-only views into a runner's producer, for tests in package runner_test
// that check what a runner believes it is running.

// KnownLease returns the lease of the run r knows for job jid, and whether it
// knows one.
func KnownLease(r *Runner, jid string) (int64, bool) {
	e := r.prod.Known(jid)
	if e == nil {
		return 0, false
	}
	return e.Job.Lease, true
}

// RunningCount returns how many runs r's workers are running.
func RunningCount(r *Runner) int { return r.prod.RunningCount() }
