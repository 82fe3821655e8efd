package jobtype_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/jobtype"
)

// AppendJSON writes exactly what json.Marshal writes, for every field and
// for strings that need escaping.
func TestEventAppendJSONMatchesEncodingJSON(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 28, 7, 55, 39, 123456789, time.FixedZone("x", 3600))
	runAt := at.Add(time.Hour)
	for _, ev := range []jobtype.Event{
		{Type: jobtype.EventSucceeded, JobID: "j1", At: at},
		{ID: "1-0/3", Type: jobtype.EventRetrying, JobID: "j2", Kind: "import", Queue: "q", Attempt: 3, At: at,
			Error: "boom \"quoted\" <b> & \n\t\u2028 \x01 \xff", RunAt: &runAt,
			Progress: &jobtype.Progress{Cursor: json.RawMessage(`{"k":[1]}`), ItemsProcessed: 5, Done: 5, Total: 10, Unit: "items", Fraction: 0.5, ETA: time.Second},
			Meta:     map[string]string{"z": "last", "a": "first <script>", "ü": "ö"}},
		{Type: jobtype.EventDeleted, JobID: "", At: time.Time{}},
	} {
		want, err := json.Marshal(ev)
		require.NoError(t, err)
		got, err := ev.AppendJSON(nil)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	}
	_, err := (&jobtype.Event{At: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}).AppendJSON(nil)
	require.Error(t, err, "a time json.Marshal refuses is refused")
}

// FuzzEventAppendJSON checks the encoder against encoding/json for any
// strings.
func FuzzEventAppendJSON(f *testing.F) {
	f.Add("succeeded", "j", "k", "q", "m", "v", "e")
	f.Add("x\u2028", "<>&", "\xff\xfe", "\"\\", "\x00", "é", "\t\n")
	f.Fuzz(func(t *testing.T, typ, jid, kind, q, mk, mv, errText string) {
		ev := jobtype.Event{Type: jobtype.EventType(typ), JobID: jid, Kind: kind, Queue: q, Error: errText,
			At: time.Unix(1700000000, 5), Meta: map[string]string{mk: mv}}
		want, err := json.Marshal(ev)
		require.NoError(t, err)
		got, err := ev.AppendJSON(nil)
		require.NoError(t, err)
		require.Equal(t, string(want), string(got))
	})
}
