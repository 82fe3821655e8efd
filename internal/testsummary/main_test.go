package main

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// run feeds the recorded `go test -json` output in testdata/name (or input,
// when name is empty) through a summary and returns what it printed and
// its exit code.
func run(t *testing.T, name, input string) (string, int) {
	t.Helper()
	if name != "" {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		require.NoError(t, err)
		input = string(b)
	}
	var out strings.Builder
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSummary(&out, func() time.Time { clock = clock.Add(time.Second); return clock })
	sc := bufio.NewScanner(strings.NewReader(input))
	for sc.Scan() {
		s.line(sc.Text())
	}
	require.NoError(t, sc.Err())
	code := s.finish()
	return out.String(), code
}

func TestPass(t *testing.T) {
	t.Parallel()
	out, code := run(t, "pass.jsonl", "")
	require.Equal(t, 0, code, out)
	require.Equal(t, "?   \texample.com/demo/notests\t[no test files]\n"+
		"ok  \texample.com/demo/pass\t0.041s\n"+
		"testsummary: ok: 1 packages ok, 1 without tests; tests: 3 passed, 0 failed, 0 skipped; 1s\n", out)
	require.NotContains(t, out, "some log", "a passing test's output is not shown")
}

func TestFailShowsTheWholeOutputOfFailedTests(t *testing.T) {
	t.Parallel()
	out, code := run(t, "fail.jsonl", "")
	require.Equal(t, 1, code)
	for _, want := range []string{
		"=== RUN   TestBad\n    fail_test.go:7: context before\n    fail_test.go:8: want 1, got 2\n--- FAIL: TestBad (0.00s)\n",
		"=== RUN   TestParent/bad\n    fail_test.go:12: sub failed\n--- FAIL: TestParent/bad (0.00s)\n",
		"FAIL\texample.com/demo/fail\t0.",
		"panic: assignment to entry in nil map",
		"p_test.go:6",
		"FAIL\texample.com/demo/panics\t0.",
		"testsummary: FAIL: 0 packages ok, 2 failed; tests: 3 passed, 4 failed, 0 skipped;",
	} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "--- PASS", "passing tests stay quiet")
	require.Less(t, strings.Index(out, "want 1, got 2"), strings.Index(out, "FAIL\texample.com/demo/fail"),
		"a failed test's output comes before its package's line")
}

func TestSkipsAreListedByMessage(t *testing.T) {
	t.Parallel()
	out, code := run(t, "skip.jsonl", "")
	require.Equal(t, 0, code, "a skip is not a failure (CI=true turns missing services into failures)")
	require.Contains(t, out, "ok  \tgithub.com/iterjob/iterjob/queue\t")
	require.Contains(t, out, "ok  \tgithub.com/iterjob/iterjob/enumerators\t")
	require.Contains(t, out, "\nSkipped tests (3), by reason:\n")
	require.Contains(t, out, "\n  testutil: Redis at redis://127.0.0.1:1/0 is unreachable (dial tcp 127.0.0.1:1: connect: connection refused). "+
		"Start it with `redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save \"\" --appendonly no`, or point TEST_REDIS_URL at one.\n"+
		"    github.com/iterjob/iterjob/queue (1): TestEnqueueFetchAck/redis\n")
	require.Contains(t, out, "is unreachable (failed to connect to")
	require.Contains(t, out, "    github.com/iterjob/iterjob/enumerators (2): TestKeyset")
	require.NotContains(t, out, "testutil.go:", "the file:line prefix is dropped")
	require.Contains(t, out, "testsummary: ok: 2 packages ok; tests: 3 passed, 0 failed, 3 skipped;")
}

func TestSkipsGroupAndCap(t *testing.T) {
	t.Parallel()
	var in strings.Builder
	for i := range 12 {
		name := "TestA" + string(rune('a'+i))
		in.WriteString(`{"Action":"run","Package":"p","Test":"` + name + `"}` + "\n")
		in.WriteString(`{"Action":"output","Package":"p","Test":"` + name + `","Output":"=== RUN   ` + name + `\n"}` + "\n")
		in.WriteString(`{"Action":"output","Package":"p","Test":"` + name + `","Output":"    x_test.go:3: needs the service:\n"}` + "\n")
		in.WriteString(`{"Action":"output","Package":"p","Test":"` + name + `","Output":"        start it\n"}` + "\n")
		in.WriteString(`{"Action":"output","Package":"p","Test":"` + name + `","Output":"--- SKIP: ` + name + ` (0.00s)\n"}` + "\n")
		in.WriteString(`{"Action":"skip","Package":"p","Test":"` + name + `"}` + "\n")
	}
	in.WriteString(`{"Action":"run","Package":"p","Test":"TestQuiet"}` + "\n")
	in.WriteString(`{"Action":"skip","Package":"p","Test":"TestQuiet"}` + "\n")
	in.WriteString(`{"Action":"pass","Package":"p","Elapsed":1.5}` + "\n")
	out, code := run(t, "", in.String())
	require.Equal(t, 0, code)
	require.Contains(t, out, "\n  needs the service: start it\n    p (12): TestAa, TestAb, TestAc, TestAd, TestAe, TestAf, TestAg, TestAh and 4 more\n")
	require.Contains(t, out, "\n  (skipped without a message)\n    p (1): TestQuiet\n")
	require.Less(t, strings.Index(out, "needs the service"), strings.Index(out, "without a message"), "the biggest group first")
}

func TestBuildFailures(t *testing.T) {
	t.Parallel()
	out, code := run(t, "buildfail.jsonl", "")
	require.Equal(t, 1, code)
	for _, want := range []string{
		"# example.com/demo/buildfail [example.com/demo/buildfail.test]\nbuildfail/b_test.go:5:40: cannot use \"s\" (untyped string constant) as int value in variable declaration\n",
		"FAIL\texample.com/demo/buildfail [build failed]\n",
		"v_test.go:8:40: fmt.Printf format %d has arg \"s\" of wrong type string\n",
		"FAIL\texample.com/demo/vetfail [build failed]\n",
		"ok  \texample.com/demo/pass\t",
		"testsummary: FAIL: 1 packages ok, 2 failed (2 builds failed); tests: 3 passed, 0 failed, 0 skipped;",
	} {
		require.Contains(t, out, want)
	}
	require.Equal(t, 1, strings.Count(out, "cannot use"), "a build's output is shown once")
}

func TestTruncatedInputFails(t *testing.T) {
	t.Parallel()
	out, code := run(t, "truncated.jsonl", "")
	require.Equal(t, 1, code, "a package with no result must not look green")
	require.Contains(t, out, "FAIL\texample.com/demo/pass [no result: the input ended first]\n")
	require.Contains(t, out, "testsummary: the input ended before 1 packages had a result")

	// Cut in the middle of a line.
	b, err := os.ReadFile(filepath.Join("testdata", "pass.jsonl"))
	require.NoError(t, err)
	out, code = run(t, "", string(b[:len(b)-40]))
	require.Equal(t, 1, code)
	require.Contains(t, out, "1 input lines were not test events")
}

func TestNoResultsFail(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"", "\n", `{"Action":"start","Package":"p"}`} {
		out, code := run(t, "", in)
		require.Equal(t, 1, code, "%q", in)
		require.Contains(t, out, "testsummary: FAIL: ", "%q", in)
	}
	out, _ := run(t, "", "")
	require.Contains(t, out, "the input held no test results")
	out, code := run(t, "", "go: cannot find main module\n")
	require.Equal(t, 1, code)
	require.Contains(t, out, "go: cannot find main module\n", "what is not an event is shown as it is")
}

func TestPackageFailureOutsideTestsIsShown(t *testing.T) {
	t.Parallel()
	in := `{"Action":"start","Package":"p"}
{"Action":"output","Package":"p","Output":"setup: cannot start\n"}
{"Action":"run","Package":"p","Test":"TestHang"}
{"Action":"output","Package":"p","Test":"TestHang","Output":"=== RUN   TestHang\n"}
{"Action":"output","Package":"p","Output":"panic: test timed out after 10m0s\n"}
{"Action":"output","Package":"p","Output":"FAIL\tp\t600.012s\n"}
{"Action":"fail","Package":"p","Elapsed":600.012}
`
	out, code := run(t, "", in)
	require.Equal(t, 1, code)
	require.Equal(t, "=== RUN   TestHang\nsetup: cannot start\npanic: test timed out after 10m0s\nFAIL\tp\t600.012s\n", out[:strings.Index(out, "testsummary:")])
}

// During a long silence (a cold build) it says it is still waiting, then
// reports as usual.
func TestSaysItIsStillWaiting(t *testing.T) {
	t.Parallel()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	code := make(chan int, 1)
	go func() {
		code <- summarize(inR, outW, 20*time.Millisecond)
		_ = outW.Close()
	}()
	out := bufio.NewScanner(outR)
	require.True(t, out.Scan())
	require.Equal(t, firstLine, out.Text(), "the first line comes before any input")
	require.True(t, out.Scan())
	require.True(t, strings.HasPrefix(out.Text(), "testsummary: still building or testing after "), out.Text())
	require.True(t, strings.HasSuffix(out.Text(), " (0 packages done)"), out.Text())
	go func() {
		_, _ = io.WriteString(inW, `{"Action":"pass","Package":"p","Elapsed":0.5}`+"\n")
		_ = inW.Close()
	}()
	var rest []string
	for out.Scan() {
		rest = append(rest, out.Text())
	}
	require.Contains(t, rest, "ok  \tp\t0.500s")
	require.True(t, strings.HasPrefix(rest[len(rest)-1], "testsummary: ok: 1 packages ok;"), rest)
	require.Equal(t, 0, <-code)
}

func TestFailedParallelTestWithoutSchedulingNoise(t *testing.T) {
	t.Parallel()
	in := `{"Action":"run","Package":"p","Test":"TestP"}
{"Action":"output","Package":"p","Test":"TestP","Output":"=== RUN   TestP\n"}
{"Action":"output","Package":"p","Test":"TestP","Output":"=== PAUSE TestP\n"}
{"Action":"output","Package":"p","Test":"TestP","Output":"=== CONT  TestP\n"}
{"Action":"output","Package":"p","Test":"TestP","Output":"    p_test.go:9: boom\n"}
{"Action":"output","Package":"p","Test":"TestP","Output":"=== NAME  TestP\n"}
{"Action":"output","Package":"p","Test":"TestP","Output":"--- FAIL: TestP (0.00s)\n"}
{"Action":"fail","Package":"p","Test":"TestP"}
{"Action":"fail","Package":"p","Elapsed":0.1}
`
	out, code := run(t, "", in)
	require.Equal(t, 1, code)
	require.True(t, strings.HasPrefix(out, "=== RUN   TestP\n    p_test.go:9: boom\n--- FAIL: TestP (0.00s)\nFAIL\tp\t0.100s\n"), out)
}
