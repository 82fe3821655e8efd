// Package browsertest drives a real headless Chromium for end-to-end tests
// of iterjob's web pages: it starts the browser, collects console errors and
// uncaught exceptions, and saves screenshots as test artifacts.
//
// Tests skip when Chromium is missing, with a message saying how to install
// it, except under CI=true, where they fail. The browser is found at
// $CHROMIUM, else /usr/bin/chromium, else chromium or chromium-browser on
// PATH. Screenshots go to $ITERJOB_ARTIFACTS (default: a directory in the
// system temp dir named after the test), printed in the test log.
package browsertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/iterjob/iterjob/internal/testutil"
)

// Browser is one headless Chromium for a test; its tabs share it.
type Browser struct {
	t    testing.TB
	root context.Context // the browser's first tab, left blank; tabs derive from it
}

// Path returns the Chromium binary to use, or "".
func Path() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome"} {
		if found, err := exec.LookPath(p); err == nil {
			return found
		}
	}
	return ""
}

// New starts a headless Chromium, closed at cleanup.
func New(t testing.TB) *Browser {
	t.Helper()
	path := Path()
	if path == "" {
		msg := "browsertest: Chromium not found; install it (Debian: apt-get install -y chromium) or set CHROMIUM"
		if testutil.InCI() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	root, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(root); err != nil { // starts the browser
		t.Fatalf("browsertest: start Chromium: %v", err)
	}
	return &Browser{t: t, root: root}
}

// Tab is one browser tab, with the console errors and exceptions its pages
// raised.
type Tab struct {
	t   testing.TB
	ctx context.Context

	mu     sync.Mutex
	errors []string
}

// Tab opens a new tab, closed at cleanup. Console errors, browser-log
// errors and uncaught exceptions of its pages are recorded from then on.
func (b *Browser) Tab() *Tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.root)
	b.t.Cleanup(cancel)
	tab := &Tab{t: b.t, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil { // opens the tab
		b.t.Fatalf("browsertest: open a tab: %v", err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tab.record(m.String())
			}
		}
	}()
	return tab
}

func (t *Tab) record(s string) {
	t.mu.Lock()
	t.errors = append(t.errors, s)
	t.mu.Unlock()
}

// Errors returns the console errors and uncaught exceptions seen so far.
func (t *Tab) Errors() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.errors...)
}

// Do runs actions in the tab, failing the test on error; each call has 30
// seconds.
func (t *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	t.t.Helper()
	if err := t.Try(30*time.Second, actions...); err != nil {
		t.Screenshot("failed")
		t.t.Fatalf("browsertest: %v", err)
	}
}

// Try runs actions in the tab within timeout and returns their error.
func (t *Tab) Try(timeout time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	return chromedp.Do(ctx, actions...)
}

// Eval returns the value of a JavaScript expression, failing the test on
// error.
func Eval[T any](t *Tab, expr string) T {
	t.t.Helper()
	v, err := TryEval[T](t, 10*time.Second, expr)
	if err != nil {
		t.t.Fatalf("browsertest: eval %s: %v", expr, err)
	}
	return v
}

// TryEval returns the value of a JavaScript expression, or an error.
func TryEval[T any](t *Tab, timeout time.Duration, expr string) (T, error) {
	ctx, cancel := context.WithTimeout(t.ctx, timeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[T](expr))
}

// WaitJS polls a JavaScript expression until it is true, failing the test
// with what after timeout.
func (t *Tab) WaitJS(timeout time.Duration, expr, what string) {
	t.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if ok, err := TryEval[bool](t, 5*time.Second, "!!("+expr+")"); err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			t.Screenshot("timeout")
			t.t.Fatalf("browsertest: timed out after %s waiting for %s (%s)", timeout, what, expr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Screenshot saves a full-page PNG named after the test and name, and
// returns its path.
func (t *Tab) Screenshot(name string) string {
	t.t.Helper()
	ctx, cancel := context.WithTimeout(t.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.t.Logf("browsertest: screenshot %s: %v", name, err)
		return ""
	}
	dir := ArtifactsDir(t.t)
	path := filepath.Join(dir, safe(name)+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.t.Logf("browsertest: save screenshot: %v", err)
		return ""
	}
	t.t.Logf("browsertest: screenshot %s", path)
	return path
}

// ArtifactsDir returns the directory for t's artifacts, created if needed.
func ArtifactsDir(t testing.TB) string {
	root := os.Getenv("ITERJOB_ARTIFACTS")
	if root == "" {
		root = filepath.Join(os.TempDir(), "iterjob-artifacts")
	}
	dir := filepath.Join(root, safe(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	return dir
}

func safe(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}

// RequireNoErrors fails the test if the tab's pages raised console errors
// or uncaught exceptions.
func (t *Tab) RequireNoErrors() {
	t.t.Helper()
	if errs := t.Errors(); len(errs) > 0 {
		t.t.Fatalf("browsertest: the page raised errors:\n%s", strings.Join(errs, "\n"))
	}
}

// String describes the tab's errors, for messages.
func (t *Tab) String() string { return fmt.Sprint(t.Errors()) }
