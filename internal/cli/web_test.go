package cli_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/cli"
	"github.com/iterjob/iterjob/internal/testutil"
	"github.com/iterjob/iterjob/queue"
)

// web serves the dashboard and /metrics, behind basic auth when given one,
// and refuses to listen beyond loopback without it.
func TestWebCommand(t *testing.T) {
	t.Parallel()
	testutil.EachRedis(t, func(t *testing.T, r testutil.Redis) {
		b := setup(t, r)
		b.enqueue(t, "mail", nil, &queue.EnqueueOpts{Queue: "mail"})

		get := func(u, user, pass string) (int, string) {
			req, err := http.NewRequest("GET", u, nil)
			require.NoError(t, err)
			if user != "" {
				req.SetBasicAuth(user, pass)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			return resp.StatusCode, string(body)
		}

		open := startCmd(t, r, "web", "--listen", "127.0.0.1:0")
		open.waitOut(t, "listening on")
		base := strings.TrimSuffix(regexp.MustCompile(`http://\S+`).FindString(open.out.String()), "/")
		code, body := get(base+"/queues", "", "")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, `href="/queues/mail"`)
		code, body = get(base+"/metrics", "", "")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, `iterjob_queue_size{queue="mail"} 1`)
		require.Equal(t, cli.ExitOK, open.stop())

		guarded := startCmd(t, r, "web", "--listen", "127.0.0.1:0", "--basic-auth", "ops:s3cret", "--read-only")
		guarded.waitOut(t, "listening on")
		base = strings.TrimSuffix(regexp.MustCompile(`http://\S+`).FindString(guarded.out.String()), "/")
		for _, p := range []string{"/", "/metrics", "/sets/dead"} {
			code, _ = get(base+p, "", "")
			require.Equal(t, http.StatusUnauthorized, code, p)
			code, _ = get(base+p, "ops", "wrong")
			require.Equal(t, http.StatusUnauthorized, code, p)
		}
		code, body = get(base+"/queues", "ops", "s3cret")
		require.Equal(t, http.StatusOK, code)
		require.Contains(t, body, "read-only")
		require.NotContains(t, guarded.out.String()+guarded.errOut.String(), "s3cret")
		require.Equal(t, cli.ExitOK, guarded.stop())

		res := run(t, r, "web", "--listen", "0.0.0.0:0")
		require.Equal(t, cli.ExitUsage, res.code)
		require.Contains(t, res.stderr, "--basic-auth")
	})
}
