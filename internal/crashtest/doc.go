// Package crashtest proves, with real worker processes and a real Redis,
// that no job and no item is lost when workers are stopped or killed at any
// instant, or when Redis itself goes away.
//
// # How it works
//
// TestMain builds the worker program in ./worker once. Each test starts
// worker processes on a namespace of its own, enqueues jobs, and drives the
// workers with real signals: SIGTERM (graceful stop), SIGTSTP (quiet) and
// SIGKILL (crash). The jobs record every effect in Redis (each item of an
// iterable job, each start and completion of a plain job), so the test can
// count afterwards what was done, and how often.
//
// The tests that restart Redis run their own redis-server on a free loopback
// port with an append-only file synced on every write, or, to lose all its
// data on a restart, with no persistence.
//
// The failover tests (TestFailover...) run their own Redis Cluster of three
// primaries with a replica each, and fail shards over while the workers
// run: gracefully (CLUSTER FAILOVER), or by killing a primary whose replica
// has missed its last writes (see failover_test.go).
//
// # Running
//
//	go test ./internal/crashtest/
//
// It needs Redis at TEST_REDIS_URL (default 127.0.0.1:6379), redis-server and
// redis-cli on the PATH, and the local Redis Cluster of testutil.Cluster;
// without them the tests skip, or fail when CI=true. -short skips the
// failover tests (about 20 s each). A test that kills workers at random
// instants logs its seed; set CRASHTEST_SEED to replay it.
package crashtest
