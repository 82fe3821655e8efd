// Package web is iterjob's dashboard: an http.Handler an application mounts
// under any prefix to see and steer its queues.
//
//	dash, err := web.New(client, web.Options{Auth: isAdmin})
//	mux.Handle("/jobs/", http.StripPrefix("/jobs", dash))
//
// Pages: an overview (processed and failed per day, queues with size and
// latency, set sizes, busy count, Redis version and memory), busy (processes
// and their running jobs, with a live progress bar for iterable jobs:
// items, total, percent, items/s, ETA, cursor, interruptions, and a cancel
// button), queues (paginated jobs, delete, pause and resume), the scheduled,
// retry and dead sets (paginated, filtered by kind, retry now, delete, kill,
// bulk retry and delete) and a job's detail (args, meta, attempts, error and
// trace, iteration state). Pages follow the namespace's events stream over
// Server-Sent Events: progress bars move, finished jobs leave the busy page,
// and a deleted job disappears from every open page. Nothing is loaded from
// outside: styles and script are embedded, and every value is escaped by
// html/template.
//
// Security: Options.Auth guards every route (401 when it refuses); every
// change is a POST carrying a CSRF token tied to a cookie; ReadOnly hides
// the buttons and refuses changes with 403. The dashboard shows job
// arguments and errors: mount it only for people allowed to see them.
//
// Events reach the pages only when the processes that cause them publish
// them (queue.Config.PublishEvents, runner.Config.PublishEvents).
package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/iterjob/iterjob/queue"
)

//go:embed assets templates
var files embed.FS

// Options configure the dashboard. The zero value serves every page to
// everyone, with changes allowed: set Auth unless the handler is mounted
// behind the application's own authentication.
type Options struct {
	// Auth, if set, is asked for every request; false answers 401.
	Auth func(*http.Request) bool
	// ReadOnly hides every button that changes something and refuses such
	// requests with 403.
	ReadOnly bool
	// Title is shown in the header. Default "iterjob".
	Title string
	// PageSize is the number of jobs per page. Default 25.
	PageSize int
	// Logger receives errors. Default slog.Default().
	Logger *slog.Logger
}

// ErrNilClient is returned by New without a client.
var ErrNilClient = errors.New("web: nil queue client")

// Dashboard is the dashboard's handler.
type Dashboard struct {
	client *queue.Client
	opts   Options
	log    *slog.Logger
	tpl    map[string]*template.Template
	mux    *http.ServeMux
}

// New returns the dashboard for client's namespace.
func New(client *queue.Client, opts Options) (*Dashboard, error) {
	if client == nil {
		return nil, ErrNilClient
	}
	if opts.Title == "" {
		opts.Title = "iterjob"
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 25
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	d := &Dashboard{client: client, opts: opts, log: opts.Logger, tpl: map[string]*template.Template{}}
	for _, page := range []string{"overview", "busy", "queues", "queue", "set", "job", "error"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, err
		}
		d.tpl[page] = t
	}
	assets, err := fs.Sub(files, "assets")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /assets/", http.StripPrefix("/assets/", cacheForever(http.FileServerFS(assets))))
	mux.HandleFunc("GET /{$}", d.live(d.overview))
	mux.HandleFunc("GET /busy", d.live(d.busy))
	mux.HandleFunc("GET /queues", d.live(d.queues))
	mux.HandleFunc("GET /queues/{queue}", d.live(d.queue))
	mux.HandleFunc("GET /sets/{set}", d.live(d.set))
	mux.HandleFunc("GET /jobs/{id}", d.live(d.job))
	mux.HandleFunc("GET /events", d.events)
	mux.HandleFunc("POST /jobs/{id}/cancel", d.change(d.cancel))
	mux.HandleFunc("POST /queues/{queue}/pause", d.change(d.pause))
	mux.HandleFunc("POST /queues/{queue}/resume", d.change(d.resume))
	mux.HandleFunc("POST /queues/{queue}/jobs/{id}/delete", d.change(d.deleteQueued))
	mux.HandleFunc("POST /sets/{set}/jobs/{id}/{action}", d.change(d.setAction))
	mux.HandleFunc("POST /sets/{set}/bulk", d.change(d.bulk))
	d.mux = mux
	return d, nil
}

// ServeHTTP serves the dashboard.
func (d *Dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if d.opts.Auth != nil && !d.opts.Auth(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="iterjob"`)
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'")
	d.mux.ServeHTTP(w, r)
}

// afterKey keys a page request's events position in its context.
type afterKey struct{}

// live wraps a page that follows events: it takes the events position
// before the page reads anything, so that an event landing between the
// page's reads and its connection to /events is still delivered to it.
func (d *Dashboard) live(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		pos, err := d.client.EventsPosition(r.Context())
		if err != nil {
			// The page still works; it follows events from when it connects.
			d.log.WarnContext(r.Context(), "web: events position", slog.Any("error", err))
		} else {
			r = r.WithContext(context.WithValue(r.Context(), afterKey{}, pos))
		}
		h(w, r)
	}
}

func cacheForever(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// csrfCookie holds the token that every form must repeat.
const csrfCookie = "iterjob_csrf"

// token returns the request's CSRF token, setting its cookie if the
// browser has none.
func (d *Dashboard) token(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == 32 {
		return c.Value
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: tok, Path: root(r) + "/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	return tok
}

// change wraps a handler that changes something: refused in read-only mode,
// and without a CSRF token matching the cookie. After the change it sends
// the browser back where it came from.
func (d *Dashboard) change(h func(ctx context.Context, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if d.opts.ReadOnly {
			http.Error(w, "the dashboard is read-only", http.StatusForbidden)
			return
		}
		c, err := r.Cookie(csrfCookie)
		form := r.PostFormValue("csrf")
		if err != nil || form == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(form)) != 1 {
			http.Error(w, "missing or invalid CSRF token", http.StatusForbidden)
			return
		}
		if err := h(r.Context(), r); err != nil {
			d.log.WarnContext(r.Context(), "web: change failed", slog.String("path", r.URL.Path), slog.Any("error", err))
			d.render(w, r, http.StatusBadRequest, "error", "Error", map[string]any{"Error": err.Error()})
			return
		}
		back := r.PostFormValue("back")
		if back == "" || !strings.HasPrefix(back, "/") || strings.HasPrefix(back, "//") {
			back = "/"
		}
		http.Redirect(w, r, root(r)+back, http.StatusSeeOther)
	}
}

// root is the prefix the dashboard is mounted under ("" at the root), from
// the path the browser asked for and the path left after StripPrefix.
func root(r *http.Request) string {
	full := r.URL.RawPath
	if r.RequestURI != "" {
		full, _, _ = strings.Cut(r.RequestURI, "?")
	}
	if full == "" {
		full = r.URL.Path
	}
	p := r.URL.EscapedPath()
	if strings.HasSuffix(full, p) {
		return strings.TrimSuffix(full, p)
	}
	return ""
}

// page is what every template gets.
type page struct {
	Title, Name, Root, CSRF string
	// After is the events position taken before the page read its data:
	// the page follows events from there (see live).
	After    string
	ReadOnly bool
	Now      time.Time
	Data     any
}

func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	after, _ := r.Context().Value(afterKey{}).(string)
	p := page{Title: title, Name: name, Root: root(r), CSRF: d.token(w, r), After: after, ReadOnly: d.opts.ReadOnly, Now: time.Now(), Data: data}
	var b strings.Builder
	if err := d.tpl[name].Execute(&b, struct {
		page
		App string
	}{p, d.opts.Title}); err != nil {
		d.log.ErrorContext(r.Context(), "web: render", slog.String("page", name), slog.Any("error", err))
		http.Error(w, "render failed", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, status int, err error) {
	d.log.WarnContext(r.Context(), "web: page failed", slog.String("path", r.URL.Path), slog.Any("error", err))
	d.render(w, r, status, "error", "Error", map[string]any{"Error": err.Error()})
}
