package redact_test

import (
	"errors"
	"net/url"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://user:s3cret@127.0.0.1:6379/0", "redis://user:xxxxx@127.0.0.1:6379/0"},
		{"redis://:s3cret@host", "redis://:xxxxx@host"},
		{"rediss://user:s3cr%40t@host:6380/1?dial_timeout=3", "rediss://user:xxxxx@host:6380/1?dial_timeout=3"},
		{"redis://user@host", "redis://user@host"},
		{"unix:///tmp/redis.sock?db=1&password=s3cret", "unix:///tmp/redis.sock?db=1&password=xxxxx"},
		{"postgres://postgres:s3cret@127.0.0.1:5432/test?sslmode=disable", "postgres://postgres:xxxxx@127.0.0.1:5432/test?sslmode=disable"},
		{"postgres://h/db?user=u&password=s3cret&sslpassword=s3cret&Pass%77ord=s3cret", "postgres://h/db?user=u&password=xxxxx&sslpassword=xxxxx&Pass%77ord=xxxxx"},
		{"host=h user=u password=s3cret dbname=test", "host=h user=u password=xxxxx dbname=test"},
		{"host=h password = 's3 cr\\'et' dbname=test", "host=h password = xxxxx dbname=test"},
		{"host=h sslpassword=s3cret", "host=h sslpassword=xxxxx"},
		// Strings that do not parse are not shown, whatever is in them.
		{"redis://user:s3cret@host:port/0", "redis://(not shown: it does not parse as a URL)"},
		{"redis://user:s3cret@ho st/0", "redis://(not shown: it does not parse as a URL)"},
		{"redis://user:s3%zzcret@host/0", "redis://(not shown: it does not parse as a URL)"},
		{"s3cret", "(not shown: it does not parse as a URL)"},
		{":s3cret@host", "(not shown: it does not parse as a URL)"},
		{"127.0.0.1:6379", "(not shown: it does not parse as a URL)"},
	} {
		got := redact.URL(tc.in)
		require.Equal(t, tc.want, got, "URL(%q)", tc.in)
		require.NotContains(t, got, "s3", "URL(%q)", tc.in)
	}
}

func TestErrorHidesTheURLItQuotes(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"redis://user:s3cret@host:port/0",         // bad port
		"redis://user:s3cret@host/0\x7f",          // control character
		"redis://us\"er:s3cret@host:abc/0",        // quoted differently by %q
		"redis://user:s3cret@[::1/0",              // bad IPv6 literal
		"redis://user:s3cret@host/0?db=x",         // go-redis rejects the db
		"http://user:s3cret@host/0",               // go-redis rejects the scheme
		"redis://user:s3cret@host:6379/0/extra/x", // go-redis rejects the path
	} {
		_, err := redis.ParseURL(raw)
		require.Error(t, err, raw)
		safe := redact.Error(err, raw)
		require.NotContains(t, safe.Error(), "s3cret", "%q: %v", raw, safe)
		require.ErrorIs(t, safe, err, "the original error is still in the chain")
		if _, ok := errors.AsType[*url.Error](err); ok {
			require.Contains(t, err.Error(), "s3cret", "net/url's error quotes the URL, which is why Error exists")
		}
	}
	require.NoError(t, redact.Error(nil, "redis://u:s3cret@h"))
	plain := errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	require.Same(t, plain, redact.Error(plain, "redis://u:s3cret@127.0.0.1:1/0"), "an error that quotes nothing is returned as is")
}
