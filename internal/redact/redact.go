// Package redact hides the credentials in connection strings (REDIS_URL,
// DATABASE_URL and the like) before a program prints them in a log line or
// an error.
package redact

import (
	"errors"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// Mask replaces a hidden password, as net/url's Redacted does.
const Mask = "xxxxx"

// URL returns raw fit to print. In a URL the password of the user info and
// the value of every query parameter whose name contains "password" (as
// PostgreSQL's sslpassword) are replaced by Mask; in a key=value
// connection string (PostgreSQL's other form), the password values are. A
// string that is neither is not shown at all: it may hold a password
// somewhere a parser could not tell.
func URL(raw string) string {
	if raw == "" {
		return ""
	}
	if !strings.Contains(raw, "://") && strings.Contains(raw, "=") {
		return keyValues(raw)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		scheme, _, ok := strings.Cut(raw, "://")
		if ok && validScheme(scheme) {
			return scheme + "://(not shown: it does not parse as a URL)"
		}
		return "(not shown: it does not parse as a URL)"
	}
	if u.RawQuery != "" {
		u.RawQuery = query(u.RawQuery)
	}
	return u.Redacted()
}

// query masks the values of password parameters, keeping the others and
// their order as written.
func query(q string) string {
	parts := strings.Split(q, "&")
	for i, p := range parts {
		k, _, hasValue := strings.Cut(p, "=")
		name, err := url.QueryUnescape(k)
		if err != nil {
			name = k
		}
		if hasValue && strings.Contains(strings.ToLower(name), "password") {
			parts[i] = k + "=" + Mask
		}
	}
	return strings.Join(parts, "&")
}

// kvPassword matches a password in a key=value connection string: the key
// (any key containing "password"), then a quoted or a bare value.
var kvPassword = regexp.MustCompile(`(?i)(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'?|[^\s]*)`)

func keyValues(s string) string {
	return kvPassword.ReplaceAllString(s, "${1}"+Mask)
}

func validScheme(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		letter := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
		if !letter && (i == 0 || !('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.')) {
			return false
		}
	}
	return true
}

// Error returns err fit to print when its message may quote raw, as
// net/url's parse errors quote the whole URL: every copy of raw in the
// message is replaced by URL(raw). The result wraps err, so errors.Is and
// errors.As still work (and whoever prints what they unwrap takes the risk).
func Error(err error, raw string) error {
	if err == nil || raw == "" {
		return err
	}
	msg := err.Error()
	safe := URL(raw)
	out := strings.ReplaceAll(msg, strconv.Quote(raw), strconv.Quote(safe))
	out = strings.ReplaceAll(out, raw, safe)
	if ue, ok := errors.AsType[*url.Error](err); ok && ue.URL != raw {
		// A URL net/url was given after some rewriting (go-redis passes the
		// string as is, but be safe).
		out = strings.ReplaceAll(out, strconv.Quote(ue.URL), strconv.Quote(URL(ue.URL)))
	}
	if out == msg {
		return err
	}
	return &redacted{msg: out, err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }
