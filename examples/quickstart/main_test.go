package main

import (
	"os"
	"os/exec"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/stretchr/testify/require"
)

// TestMain runs the program itself when asked to, so a test can run it as
// a user does (its own process, its own environment, its exit code) without
// building another binary.
func TestMain(m *testing.M) {
	if os.Getenv("QUICKSTART_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runProgram runs the quickstart with REDIS_URL set to url and returns its
// output (stdout and stderr) and whether it exited 0.
func runProgram(t *testing.T, url string) (string, bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "QUICKSTART_RUN_MAIN=1", "REDIS_URL="+url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		require.ErrorAs(t, err, &ee, "%s", out)
	}
	return string(out), err == nil
}

// The password in REDIS_URL is never printed: not when Redis is
// unreachable, not when the URL does not parse, not in a normal run. The
// errors still say what is wrong.
func TestRedisPasswordIsNeverPrinted(t *testing.T) {
	t.Parallel()
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		out, ok := runProgram(t, "redis://user:s3cret@127.0.0.1:1/0")
		require.False(t, ok)
		require.NotContains(t, out, "s3cret")
		require.Contains(t, out, "redis at redis://user:xxxxx@127.0.0.1:1/0 (REDIS_URL)")
		require.Contains(t, out, "connection refused")
	})
	t.Run("does not parse", func(t *testing.T) {
		t.Parallel()
		out, ok := runProgram(t, "redis://user:s3cret@127.0.0.1:port/0")
		require.False(t, ok)
		require.NotContains(t, out, "s3cret")
		require.Contains(t, out, "REDIS_URL redis://(not shown: it does not parse as a URL)")
		require.Contains(t, out, `invalid port ":port"`)
	})
	t.Run("runs", func(t *testing.T) {
		t.Parallel()
		m := miniredis.RunT(t)
		m.RequireUserAuth("user", "s3cret")
		out, ok := runProgram(t, "redis://user:s3cret@"+m.Addr()+"/0")
		require.True(t, ok, "%s", out)
		require.NotContains(t, out, "s3cret")
		require.Contains(t, out, "iterjob quickstart on Redis at redis://user:xxxxx@"+m.Addr()+"/0")
	})
}
