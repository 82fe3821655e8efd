package rdb_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/rdb"
)

// overflowEnvelope has length fields whose sum overflows int64: before the
// parser checked each length against what is left, it passed the check and
// panicked slicing.
const overflowEnvelope = "1|j1|k|default|1|0|-|0|0|9223372036854775807|9223372036854775807|{}"

func TestParseEnvelopeRoundTrip(t *testing.T) {
	t.Parallel()
	e := rdb.Envelope{
		ID: "abc", Kind: "reindex", Queue: "default", Attempt: 3, Recovered: 1, UniqueHash: "00ff",
		MaxAttempts: 5, EnqueuedAt: 1_700_000_000_000_000, Meta: []byte(`{"a":"b"}`),
		UniqueKey: "tenant|zoë", Args: []byte(`{"x":"|1|"}`),
	}
	got, err := rdb.ParseEnvelope(string(e.Append(nil)))
	require.NoError(t, err)
	require.Equal(t, e, got)
}

func TestParseEnvelopeRejectsBadLengths(t *testing.T) {
	t.Parallel()
	const maxInt = "9223372036854775807"
	for _, lens := range [][2]string{
		{maxInt, maxInt}, // the sum overflows to a negative number
		{maxInt, "1"},    // the sum overflows just past the top
		{"1", maxInt},
		{maxInt, "0"},
		{"0", maxInt},
		{"3", "0"}, // one byte more than is left
		{"1", "2"},
		{"4611686018427387904", "4611686018427387904"}, // 2^62 + 2^62 = 2^63: overflows to MinInt64
	} {
		s := "1|j1|k|default|1|0|-|0|0|" + lens[0] + "|" + lens[1] + "|{}"
		_, err := rdb.ParseEnvelope(s)
		require.ErrorIs(t, err, rdb.ErrBadEnvelope, "lengths %s", lens)
		require.Contains(t, err.Error(), "exceed the 2 bytes left", "lengths %s", lens)
	}
}

func TestEnvelopeHeaderReaders(t *testing.T) {
	t.Parallel()
	us, ok := rdb.EnvelopeEnqueuedAt(overflowEnvelope[:len("1|j1|k|default|1|0|-|0|")] + "1700000000000000|x|y|")
	require.True(t, ok)
	require.Equal(t, int64(1_700_000_000_000_000), us)
	us, ok = rdb.EnvelopeEnqueuedAt(overflowEnvelope)
	require.True(t, ok, "the header is readable although the lengths are not")
	require.Zero(t, us)
	require.Equal(t, "j1", rdb.EnvelopeID(overflowEnvelope, 7))
	for _, s := range []string{"", "1|", "2|j|k|q|1|0|-|0|5|", "1|j|k|q|1|0|-|0|-5|", "1|j|k|q|1|0|-|0|x|", "1|j|k|q|1|0|-|0|5"} {
		_, ok := rdb.EnvelopeEnqueuedAt(s)
		require.False(t, ok, "%q", s)
	}
	require.Equal(t, "bad-7", rdb.EnvelopeID("1||k|", 7))
}

// checkParse is what FuzzParseEnvelope checks of any input: parsing never
// panics, and what parses is consistent with the header readers the fetch
// path and the admin API use, and parses the same once re-encoded.
func checkParse(t *testing.T, s string) {
	e, err := rdb.ParseEnvelope(s)
	id := rdb.EnvelopeID(s, 1)
	us, usOK := rdb.EnvelopeEnqueuedAt(s)
	if err != nil {
		if !errors.Is(err, rdb.ErrBadEnvelope) {
			t.Fatalf("error %v does not match rdb.ErrBadEnvelope", err)
		}
		return
	}
	if id != e.ID {
		t.Fatalf("rdb.EnvelopeID %q, parsed id %q", id, e.ID)
	}
	if !usOK || us != e.EnqueuedAt {
		t.Fatalf("rdb.EnvelopeEnqueuedAt %d %v, parsed %d", us, usOK, e.EnqueuedAt)
	}
	again, err := rdb.ParseEnvelope(string(e.Append(nil)))
	if err != nil {
		t.Fatalf("re-encoded %q does not parse: %v", e.Append(nil), err)
	}
	requireSame(t, e, again)
}

func requireSame(t *testing.T, want, got rdb.Envelope) {
	t.Helper()
	if want.ID != got.ID || want.Kind != got.Kind || want.Queue != got.Queue || want.Attempt != got.Attempt ||
		want.Recovered != got.Recovered || want.UniqueHash != got.UniqueHash || want.MaxAttempts != got.MaxAttempts ||
		want.EnqueuedAt != got.EnqueuedAt || !bytes.Equal(want.Meta, got.Meta) || want.UniqueKey != got.UniqueKey ||
		!bytes.Equal(want.Args, got.Args) {
		t.Fatalf("round trip changed the envelope:\nwant %+v\ngot  %+v", want, got)
	}
}

// FuzzParseEnvelope feeds the parser arbitrary input. Seeds: the
// f.Add calls below and testdata/fuzz/FuzzParseEnvelope.
func FuzzParseEnvelope(f *testing.F) {
	f.Add(overflowEnvelope)
	f.Add("")
	f.Add("1|")
	f.Add("1|j|k|q|1|0|-|0|0|0|0|")
	f.Add("1|j|k|q|1|0|-|0|0|0|0|null")
	f.Add("1|j|k|q|1|0|-|0|0|9|3|{\"a\":\"b\"}keyargs")
	f.Add("1|jöb|kïnd|q|1|0|-|0|0|0|6|ключ{}")
	f.Add("1|j|k|q|1|0|-|0|0|-1|0|{}")
	f.Add("1|j|k|q|+1|0|-|0|0|00|0|{}")
	f.Fuzz(func(t *testing.T, s string) { checkParse(t, s) })
}

// FuzzEnvelopeRoundTrip builds valid envelopes with Append and checks that
// they parse back unchanged.
func FuzzEnvelopeRoundTrip(f *testing.F) {
	f.Add("j1", "kind", "default", 1, 0, "", 0, int64(0), []byte(nil), "", []byte("{}"))
	f.Add("j1", "kind", "default", 3, 2, "00ff", 25, int64(1_700_000_000_000_000), []byte(`{"a":"b"}`), "k|ey", []byte(`{"x":"|"}`))
	f.Add("jöb", "kïnd", "ключ", 1, 0, "", 0, int64(1), []byte("{}"), "ünïcode key", []byte(`"✓"`))
	f.Add("j", "k", "q", 1<<62, 1<<62, "ab", 1<<62, int64(1<<62), []byte("|||"), "|", []byte("1|j|k|q|"))
	f.Fuzz(func(t *testing.T, id, kind, queue string, attempt, recovered int, uniqueHash string,
		maxAttempts int, enqueuedAt int64, meta []byte, uniqueKey string, args []byte) {
		for _, h := range []string{id, kind, queue, uniqueHash} {
			if strings.Contains(h, "|") {
				t.Skip("header fields never hold '|'")
			}
		}
		if id == "" || kind == "" || queue == "" || uniqueHash == "-" ||
			attempt < 0 || recovered < 0 || maxAttempts < 0 || enqueuedAt < 0 {
			t.Skip("not a valid envelope")
		}
		if len(meta) == 0 {
			meta = nil
		}
		if args == nil {
			args = []byte{}
		}
		e := rdb.Envelope{ID: id, Kind: kind, Queue: queue, Attempt: attempt, Recovered: recovered, UniqueHash: uniqueHash,
			MaxAttempts: maxAttempts, EnqueuedAt: enqueuedAt, Meta: meta, UniqueKey: uniqueKey, Args: args}
		s := string(e.Append(nil))
		got, err := rdb.ParseEnvelope(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		requireSame(t, e, got)
		checkParse(t, s)
		if got := rdb.EnvelopeID(s, 1); got != id {
			t.Fatalf("rdb.EnvelopeID %q, want %q", got, id)
		}
	})
}
