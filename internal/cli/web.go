package cli

import (
	"context"
	"crypto/subtle"
	"flag"
	"net"
	"net/http"
	"strings"

	"github.com/iterjob/iterjob/web"
)

// setupWeb is the web command: the dashboard, with /metrics beside it.
func setupWeb(fs *flag.FlagSet) RunFunc {
	listen := fs.String("listen", "127.0.0.1:8080", "`ADDR` to serve on")
	auth := fs.String("basic-auth", "", "`USER:PASSWORD` required of every request (default $ITERJOB_WEB_AUTH); needed to listen beyond loopback")
	readOnly := fs.Bool("read-only", false, "hide and refuse every change")
	return func(ctx context.Context, e *Env, _ []string) error {
		creds := *auth
		if creds == "" {
			creds = e.Getenv("ITERJOB_WEB_AUTH")
		}
		user, pass, hasAuth := strings.Cut(creds, ":")
		if creds != "" && (!hasAuth || user == "" || pass == "") {
			return usageError("--basic-auth wants USER:PASSWORD")
		}
		if creds == "" && !loopback(*listen) {
			return usageError("serving the dashboard on %s needs --basic-auth (or ITERJOB_WEB_AUTH); without it, listen on 127.0.0.1", *listen)
		}
		opts := web.Options{ReadOnly: *readOnly, Logger: e.Logger, Title: "iterjob · " + e.Namespace}
		if creds != "" {
			opts.Auth = func(r *http.Request) bool {
				u, p, ok := r.BasicAuth()
				return ok && subtle.ConstantTimeCompare([]byte(u), []byte(user)) == 1 &&
					subtle.ConstantTimeCompare([]byte(p), []byte(pass)) == 1
			}
		}
		dash, err := web.New(e.Client, opts)
		if err != nil {
			return err
		}
		mux := http.NewServeMux()
		metrics := e.MetricsHandler(ctx)
		if opts.Auth != nil {
			metrics = guard(opts.Auth, metrics)
		}
		mux.Handle("GET /metrics", metrics)
		mux.Handle("/", dash)
		return e.Serve(ctx, *listen, "/", mux)
	}
}

func guard(auth func(*http.Request) bool, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auth(r) {
			w.Header().Set("WWW-Authenticate", `Basic realm="iterjob"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// loopback reports whether addr listens on a loopback address only.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
