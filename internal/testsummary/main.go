// Command testsummary turns the output of `go test -json` into a short
// report that shows what a plain `go test` hides: the tests that were
// skipped, for example because Redis or PostgreSQL could not be reached,
// with the message that says how to start the service.
//
//	go test -race -count=1 -json ./... | go run ./internal/testsummary
//
// As results arrive it prints one line per package (ok, FAIL, or no test
// files, with its time), the whole output of every failed test and of every
// failed build. At the end it lists the skipped tests grouped by their skip
// message, then a count. It exits 1 if a test or a build failed, if the
// input held anything but test events, or if it ended before every package
// it started had a result or without any result at all, so that a go test
// that died or a broken pipe cannot look green. It uses only the standard
// library, so it builds in a moment even on a cold cache.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// firstLine is printed before anything is read. The figures are measured on
// the project's 2-core machines (see the README).
const firstLine = "testsummary: a first run builds every package and its dependencies with the race detector, " +
	"with no output for a while: on 2 cores, 3 minutes (up to 9 on a busy machine), the first results after 1-5; " +
	"later runs take 1-2 minutes."

// quietFor is how long testsummary stays silent before it says it is still
// waiting (a cold build prints nothing for minutes).
const quietFor = time.Minute

// maxTestsShown bounds the skipped tests named per package and message.
const maxTestsShown = 8

func main() {
	os.Exit(summarize(os.Stdin, os.Stdout, quietFor))
}

// summarize reads events from in and reports on out; after quiet without
// printing anything it says it is still waiting. It returns the exit code.
func summarize(in io.Reader, out io.Writer, quiet time.Duration) int {
	w := &stampedWriter{w: out, at: time.Now()}
	s := newSummary(w, time.Now)
	fmt.Fprintln(w, firstLine)
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
		for sc.Scan() {
			lines <- sc.Text()
		}
		readErr <- sc.Err()
		close(lines)
	}()
	tick := time.NewTicker(quiet / 4)
	defer tick.Stop()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				if err := <-readErr; err != nil {
					fmt.Fprintln(w, "testsummary: reading the input:", err)
					return 2
				}
				return s.finish()
			}
			s.line(line)
		case <-tick.C:
			if time.Since(w.last()) >= quiet {
				s.stillWaiting()
			}
		}
	}
}

// stampedWriter remembers when it was last written to.
type stampedWriter struct {
	w  io.Writer
	mu sync.Mutex
	at time.Time
}

func (s *stampedWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	s.at = time.Now()
	s.mu.Unlock()
	return s.w.Write(p)
}

func (s *stampedWriter) last() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.at
}

// event is one test2json event (go doc test2json), with the build events
// `go test -json` adds.
type event struct {
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string // build-output and build-fail
	FailedBuild string // a package's fail: the build that failed
}

// pkg is what is known of a package whose tests run.
type pkg struct {
	out   []string            // output not tied to a test
	tests map[string][]string // output of tests not finished yet
	order []string            // tests in the order they started
}

// skipped is a test that was skipped.
type skipped struct{ pkg, test string }

// summary folds events into the report.
type summary struct {
	w     io.Writer
	now   func() time.Time
	start time.Time

	pkgs       map[string]*pkg
	builds     map[string][]string // build output by import path
	shownBuild map[string]bool     // failed builds already printed
	skips      map[string][]skipped
	junk       int // input lines that were not events

	pkgOK, pkgFail, pkgNoTests, buildFail int
	pass, fail, skip                      int
	results                               int // package results seen
}

func newSummary(w io.Writer, now func() time.Time) *summary {
	return &summary{
		w: w, now: now, start: now(),
		pkgs: map[string]*pkg{}, builds: map[string][]string{}, shownBuild: map[string]bool{},
		skips: map[string][]skipped{},
	}
}

// line handles one line of input.
func (s *summary) line(line string) {
	var e event
	if err := json.Unmarshal([]byte(line), &e); err != nil || e.Action == "" {
		// Not an event: show it, and do not let the run look green.
		s.junk++
		fmt.Fprintln(s.w, line)
		return
	}
	s.event(e)
}

func (s *summary) pkg(name string) *pkg {
	p := s.pkgs[name]
	if p == nil {
		p = &pkg{tests: map[string][]string{}}
		s.pkgs[name] = p
	}
	return p
}

func (s *summary) event(e event) {
	switch e.Action {
	case "build-output":
		s.builds[e.ImportPath] = append(s.builds[e.ImportPath], e.Output)
		return
	case "build-fail":
		s.buildFail++
		s.showBuild(e.ImportPath)
		return
	}
	if e.Package == "" {
		return
	}
	p := s.pkg(e.Package)
	if e.Test != "" {
		s.testEvent(p, e)
		return
	}
	switch e.Action {
	case "output":
		p.out = append(p.out, e.Output)
	case "pass":
		s.results++
		s.pkgOK++
		fmt.Fprintf(s.w, "ok  \t%s\t%.3fs\n", e.Package, e.Elapsed)
		delete(s.pkgs, e.Package)
	case "skip":
		s.results++
		s.pkgNoTests++
		fmt.Fprintf(s.w, "?   \t%s\t[no test files]\n", e.Package)
		delete(s.pkgs, e.Package)
	case "fail":
		s.results++
		s.pkgFail++
		if e.FailedBuild != "" {
			s.showBuild(e.FailedBuild)
			fmt.Fprintf(s.w, "FAIL\t%s [build failed]\n", e.Package)
		} else {
			s.showUnfinished(p, e.Package)
			fmt.Fprintf(s.w, "FAIL\t%s\t%.3fs\n", e.Package, e.Elapsed)
		}
		delete(s.pkgs, e.Package)
	}
}

func (s *summary) testEvent(p *pkg, e event) {
	switch e.Action {
	case "run":
		if _, ok := p.tests[e.Test]; !ok {
			p.order = append(p.order, e.Test)
			p.tests[e.Test] = nil
		}
	case "output":
		if _, ok := p.tests[e.Test]; !ok {
			p.order = append(p.order, e.Test)
		}
		p.tests[e.Test] = append(p.tests[e.Test], e.Output)
	case "pass":
		s.pass++
		p.forget(e.Test)
	case "fail":
		s.fail++
		s.print(withoutScheduling(p.tests[e.Test]))
		p.forget(e.Test)
	case "skip":
		s.skip++
		msg := skipMessage(p.tests[e.Test])
		s.skips[msg] = append(s.skips[msg], skipped{pkg: e.Package, test: e.Test})
		p.forget(e.Test)
	}
}

func (p *pkg) forget(test string) {
	delete(p.tests, test)
	p.order = slices.DeleteFunc(p.order, func(t string) bool { return t == test })
}

// showUnfinished prints what a failed package said outside its tests, and
// the output of tests that never finished (a panic or a timeout ends the
// binary in the middle of them).
func (s *summary) showUnfinished(p *pkg, name string) {
	for _, t := range p.order {
		s.print(p.tests[t])
	}
	var out []string
	for _, l := range p.out {
		// go test's own result lines: this program prints its own.
		if l == "FAIL\n" || l == "PASS\n" || strings.HasPrefix(l, "FAIL\t"+name) || strings.HasPrefix(l, "ok  \t"+name) {
			continue
		}
		out = append(out, l)
	}
	s.print(out)
}

func (s *summary) showBuild(importPath string) {
	if s.shownBuild[importPath] {
		return
	}
	s.shownBuild[importPath] = true
	out := s.builds[importPath]
	if len(out) == 0 {
		out = []string{"# " + importPath + "\n", "(the build failed without output)\n"}
	}
	s.print(out)
	delete(s.builds, importPath)
}

func (s *summary) print(lines []string) {
	for _, l := range lines {
		io.WriteString(s.w, l)
		if !strings.HasSuffix(l, "\n") {
			io.WriteString(s.w, "\n")
		}
	}
}

// stillWaiting says that the run goes on, during a long silence.
func (s *summary) stillWaiting() {
	fmt.Fprintf(s.w, "testsummary: still building or testing after %s (%d packages done)\n",
		s.now().Sub(s.start).Round(time.Second), s.results)
}

// finish prints the end of the report and returns the exit code.
func (s *summary) finish() int {
	failed := s.pkgFail > 0 || s.buildFail > 0 || s.fail > 0 || s.junk > 0
	var problems []string
	if len(s.pkgs) > 0 {
		names := make([]string, 0, len(s.pkgs))
		for name := range s.pkgs {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			s.showUnfinished(s.pkgs[name], name)
			fmt.Fprintf(s.w, "FAIL\t%s [no result: the input ended first]\n", name)
		}
		problems = append(problems, fmt.Sprintf("the input ended before %d packages had a result (go test died, or the pipe broke)", len(names)))
		failed = true
	}
	if s.results == 0 {
		problems = append(problems, "the input held no test results: did go test start? (its errors are above)")
		failed = true
	}
	if s.junk > 0 {
		problems = append(problems, fmt.Sprintf("%d input lines were not test events (shown above)", s.junk))
	}
	s.showSkips()
	for _, p := range problems {
		fmt.Fprintln(s.w, "testsummary:", p)
	}
	verdict := "ok"
	if failed {
		verdict = "FAIL"
	}
	pkgs := fmt.Sprintf("%d packages ok", s.pkgOK)
	if s.pkgNoTests > 0 {
		pkgs += fmt.Sprintf(", %d without tests", s.pkgNoTests)
	}
	if s.pkgFail > 0 {
		pkgs += fmt.Sprintf(", %d failed", s.pkgFail)
	}
	if s.buildFail > 0 {
		pkgs += fmt.Sprintf(" (%d builds failed)", s.buildFail)
	}
	fmt.Fprintf(s.w, "testsummary: %s: %s; tests: %d passed, %d failed, %d skipped; %s\n",
		verdict, pkgs, s.pass, s.fail, s.skip, s.now().Sub(s.start).Round(time.Second))
	if failed {
		return 1
	}
	return 0
}

// showSkips lists the skipped tests by message, most frequent first.
func (s *summary) showSkips() {
	if s.skip == 0 {
		return
	}
	msgs := make([]string, 0, len(s.skips))
	for m := range s.skips {
		msgs = append(msgs, m)
	}
	slices.SortFunc(msgs, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(s.skips[b]), len(s.skips[a])), strings.Compare(a, b))
	})
	fmt.Fprintf(s.w, "\nSkipped tests (%d), by reason:\n", s.skip)
	for _, m := range msgs {
		tests := s.skips[m]
		fmt.Fprintf(s.w, "\n  %s\n", m)
		byPkg := map[string][]string{}
		var pkgs []string
		for _, t := range tests {
			if _, ok := byPkg[t.pkg]; !ok {
				pkgs = append(pkgs, t.pkg)
			}
			byPkg[t.pkg] = append(byPkg[t.pkg], t.test)
		}
		slices.Sort(pkgs)
		for _, p := range pkgs {
			names := byPkg[p]
			shown := strings.Join(names[:min(len(names), maxTestsShown)], ", ")
			if len(names) > maxTestsShown {
				shown += fmt.Sprintf(" and %d more", len(names)-maxTestsShown)
			}
			fmt.Fprintf(s.w, "    %s (%d): %s\n", p, len(names), shown)
		}
	}
	fmt.Fprintln(s.w)
}

// withoutScheduling drops the lines that only say a parallel test paused or
// went on (=== PAUSE, === CONT, === NAME).
func withoutScheduling(lines []string) []string {
	return slices.DeleteFunc(slices.Clone(lines), func(l string) bool {
		return strings.HasPrefix(l, "=== PAUSE ") || strings.HasPrefix(l, "=== CONT ") || strings.HasPrefix(l, "=== NAME ")
	})
}

// logPrefix is the "file.go:12: " that testing puts before a log line.
var logPrefix = regexp.MustCompile(`^[\w./-]+\.go:\d+: `)

// skipMessage is what a skipped test said, without the framing lines go
// test adds.
func skipMessage(lines []string) string {
	var parts []string
	for _, l := range lines {
		if strings.HasPrefix(l, "=== ") || strings.HasPrefix(strings.TrimSpace(l), "--- SKIP:") {
			continue
		}
		l = logPrefix.ReplaceAllString(strings.TrimSpace(l), "")
		if l != "" {
			parts = append(parts, l)
		}
	}
	if len(parts) == 0 {
		return "(skipped without a message)"
	}
	return strings.Join(parts, " ")
}
