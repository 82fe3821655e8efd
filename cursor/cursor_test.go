package cursor_test

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
)

type pos struct {
	ID   int64     `json:"id"`
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

func roundTrip[C any](t *testing.T, c C) C {
	t.Helper()
	raw, err := cursor.Encode(c)
	require.NoError(t, err)
	back, err := cursor.Decode[C](raw)
	require.NoError(t, err, "decode %s", raw)
	require.NotNil(t, back)
	return *back
}

func TestRoundTripEdgeValues(t *testing.T) {
	t.Parallel()
	require.Equal(t, int64(math.MaxInt64), roundTrip(t, int64(math.MaxInt64)))
	require.Equal(t, int64(math.MinInt64), roundTrip(t, int64(math.MinInt64)))
	require.Equal(t, uint64(math.MaxUint64), roundTrip(t, uint64(math.MaxUint64)))
	require.Equal(t, 0, roundTrip(t, 0))
	for _, s := range []string{"", "héllo wörld", "日本語", "emoji 🎉", "quote \" back\\slash", "nul \x00 byte", "<html>&"} {
		require.Equal(t, s, roundTrip(t, s))
	}
	at := time.Date(2026, 3, 29, 1, 30, 0, 123456789, time.FixedZone("x", 3600))
	p := pos{ID: math.MaxInt64, Name: "Zoë", At: at}
	got := roundTrip(t, p)
	require.True(t, p.At.Equal(got.At), "time keeps its nanoseconds and instant")
	require.Equal(t, p.ID, got.ID)
	require.Equal(t, p.Name, got.Name)
	require.Equal(t, []any{"a", "1"}, roundTrip(t, []any{"a", "1"}))
}

func TestDecodeNoCursor(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"", "  ", "null"} {
		c, err := cursor.Decode[int]([]byte(raw))
		require.NoError(t, err)
		require.Nil(t, c, "%q means no cursor", raw)
	}
}

func TestDecodeWrongShapeIsClearError(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		raw  string
		try  func([]byte) error
	}{
		{"object into int", `{"a":1}`, func(b []byte) error { _, err := cursor.Decode[int](b); return err }},
		{"string into int", `"12"`, func(b []byte) error { _, err := cursor.Decode[int](b); return err }},
		{"float into int", `1.5`, func(b []byte) error { _, err := cursor.Decode[int](b); return err }},
		{"unknown field", `{"id":1,"page":2}`, func(b []byte) error { _, err := cursor.Decode[pos](b); return err }},
		{"trailing data", `1 2`, func(b []byte) error { _, err := cursor.Decode[int](b); return err }},
		{"not json", `{id:1`, func(b []byte) error { _, err := cursor.Decode[pos](b); return err }},
	}
	for _, tc := range cases {
		err := tc.try([]byte(tc.raw))
		require.Error(t, err, tc.name)
		require.ErrorIs(t, err, cursor.ErrInvalid, tc.name)
		var de *cursor.DecodeError
		require.True(t, errors.As(err, &de), tc.name)
		require.Contains(t, err.Error(), tc.raw, "the message quotes the stored cursor (%s)", tc.name)
		require.NotEmpty(t, de.Type)
	}
}

func TestDecodeRejectsTrailingData(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		`5]`, `5}`, `5,`, `5 6`, `5 ]`, "5\n]", `5"x"`, `5x`,
	} {
		_, err := cursor.Decode[int]([]byte(raw))
		require.ErrorIs(t, err, cursor.ErrInvalid, "%q", raw)
		require.ErrorContains(t, err, "trailing data", "%q", raw)
	}
	for _, raw := range []string{`{"id":1}}`, `{"id":1}]`, `{"id":1} {"id":2}`, `{"id":1},`, `{"id":1}null`} {
		_, err := cursor.Decode[pos]([]byte(raw))
		require.ErrorIs(t, err, cursor.ErrInvalid, "%q", raw)
	}
	for _, raw := range []string{`"a""b"`, `"a"]`, `"a"}`} {
		_, err := cursor.Decode[string]([]byte(raw))
		require.ErrorIs(t, err, cursor.ErrInvalid, "%q", raw)
	}
	for _, raw := range []string{`[1]]`, `[1],[2]`, `[1]}`} {
		_, err := cursor.Decode[[]int]([]byte(raw))
		require.ErrorIs(t, err, cursor.ErrInvalid, "%q", raw)
	}
	_, err := cursor.Decode[any]([]byte(`null]`))
	require.ErrorIs(t, err, cursor.ErrInvalid, "null followed by data is not 'no cursor'")

	// Only JSON's whitespace may surround the value.
	for _, raw := range []string{"\u00a05", "5\u00a0", "\u20285"} {
		_, err := cursor.Decode[int]([]byte(raw))
		require.ErrorIs(t, err, cursor.ErrInvalid, "%q", raw)
	}

	// Whitespace around the value is not trailing data.
	for _, raw := range []string{" 5", "5 ", "\t5\r\n", "\n 5 \n"} {
		c, err := cursor.Decode[int]([]byte(raw))
		require.NoError(t, err, "%q", raw)
		require.Equal(t, 5, *c)
	}
}

func TestEncodeError(t *testing.T) {
	t.Parallel()
	_, err := cursor.Encode(math.NaN())
	require.Error(t, err)
}
