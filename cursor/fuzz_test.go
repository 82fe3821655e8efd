package cursor

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The fuzz targets' seeds are the f.Add calls and the files under
// testdata/fuzz/<target>; a plain `go test` runs them all. To fuzz:
//
//	go test -run '^$' -fuzz FuzzDecode -fuzztime 60s ./cursor

type fuzzPos struct {
	ID   int64     `json:"id"`
	Name string    `json:"name"`
	At   time.Time `json:"at"`
	Tags []string  `json:"tags,omitempty"`
}

// checkDecode decodes data as a C and, when that succeeds, checks that the
// value re-encodes and decodes to an equal value.
func checkDecode[C any](t *testing.T, data []byte, equal func(a, b C) bool) {
	c, err := Decode[C](data)
	if err != nil {
		if _, ok := err.(*DecodeError); !ok {
			t.Fatalf("Decode[%T](%q): error %T is not a *DecodeError: %v", *new(C), data, err, err)
		}
		return
	}
	if len(bytes.Trim(data, " \t\r\n")) > 0 && !json.Valid(data) {
		t.Fatalf("Decode[%T](%q) accepted input that is not one JSON value", *new(C), data)
	}
	if c == nil {
		return // no cursor
	}
	raw, err := Encode(*c)
	if err != nil {
		t.Fatalf("Decode[%T](%q) gave %#v, which does not encode: %v", *c, data, *c, err)
	}
	back, err := Decode[C](raw)
	if err != nil {
		t.Fatalf("Decode[%T](%q) gave %#v, encoded as %s, which does not decode: %v", *c, data, *c, raw, err)
	}
	if back == nil {
		// A value that encodes as null (a nil slice or map, a nil any)
		// reads back as "no cursor".
		if !bytes.Equal(raw, []byte("null")) {
			t.Fatalf("Decode[%T](%s) gave no cursor", *c, raw)
		}
		return
	}
	if !equal(*c, *back) {
		t.Fatalf("Decode[%T](%q) = %#v, re-encoded %s, decoded again %#v", *c, data, *c, raw, *back)
	}
}

func deepEqual[C any](a, b C) bool { return reflect.DeepEqual(a, b) }

func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		"", " ", "null", "5", "5]", "5}", "5 6", "-0", "1e308", "1e309", "9223372036854775807", "9223372036854775808",
		"18446744073709551615", "1.5", `"zoë 日本語 🎉"`, `"\ud800"`, "\"\xff\"", `[1,2,3]`, `[1,2]]`, `{}`, `{"a":1}}`,
		`{"id":9223372036854775807,"name":"Zoë","at":"2026-03-29T01:30:00.123456789+01:00","tags":["a"]}`,
		`{"id":1,"page":2}`, `{"at":"0000-01-01T00:00:00+01:00"}`, `true`, `[[[[[[]]]]]]`, `{"a":{"b":[null,true,"x",1e-7]}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data, deepEqual[int64])
		checkDecode(t, data, deepEqual[uint64])
		checkDecode(t, data, deepEqual[float64])
		checkDecode(t, data, deepEqual[bool])
		checkDecode(t, data, deepEqual[string])
		checkDecode(t, data, deepEqual[[]int])
		checkDecode(t, data, deepEqual[map[string]any])
		checkDecode(t, data, deepEqual[any])
		checkDecode(t, data, func(a, b fuzzPos) bool {
			return a.ID == b.ID && a.Name == b.Name && a.At.Equal(b.At) && reflect.DeepEqual(a.Tags, b.Tags)
		})
	})
}

// fieldsOf splits "k1\x00v1\x00k2\x00v2..." into a state hash.
func fieldsOf(s string) map[string]string {
	parts := strings.Split(s, "\x00")
	f := make(map[string]string, len(parts)/2)
	for i := 0; i+1 < len(parts); i += 2 {
		f[parts[i]] = parts[i+1]
	}
	return f
}

// hashOf is the hash a store holds for st: what Save writes plus the fields
// Begin's script owns.
func hashOf(st State) map[string]string {
	enc := encodeFields(st)
	f := map[string]string{"run": strconv.FormatInt(st.Run, 10), "executions": strconv.Itoa(st.Executions)}
	if !st.FirstStartedAt.IsZero() {
		f["first_started_at"] = strconv.FormatInt(st.FirstStartedAt.UnixMilli(), 10)
	}
	for i := 0; i+1 < len(enc); i += 2 {
		f[enc[i]] = enc[i+1]
	}
	return f
}

func sameState(a, b State) bool {
	return bytes.Equal(a.Cursor, b.Cursor) && a.Run == b.Run && a.Executions == b.Executions && a.Started == b.Started &&
		a.TimesInterrupted == b.TimesInterrupted && a.ItemsProcessed == b.ItemsProcessed && a.RunTime == b.RunTime &&
		a.FirstStartedAt.Equal(b.FirstStartedAt) && a.LastCheckpointAt.Equal(b.LastCheckpointAt) && a.Status == b.Status &&
		a.ProgressDone == b.ProgressDone && a.ProgressTotal == b.ProgressTotal && a.ProgressUnit == b.ProgressUnit
}

// FuzzDecodeFields feeds the state-hash decoder arbitrary hashes, given as
// "field\x00value\x00field\x00value...". It must never panic, and a state
// it decodes must survive being saved and read again.
func FuzzDecodeFields(f *testing.F) {
	full := hashOf(State{
		Cursor: []byte(`{"id":42,"name":"Zoë"}`), Run: 7, Executions: 3, Started: true, TimesInterrupted: 2,
		ItemsProcessed: 1e9, RunTime: 90 * time.Minute, FirstStartedAt: time.UnixMilli(1_700_000_000_000),
		LastCheckpointAt: time.UnixMilli(1_700_000_100_000), Status: StatusInterrupted,
		ProgressDone: 42, ProgressTotal: 100, ProgressUnit: "rows",
	})
	var b strings.Builder
	for k, v := range full {
		b.WriteString(k + "\x00" + v + "\x00")
	}
	f.Add(b.String())
	for _, s := range []string{
		"",
		"run\x001",
		"run\x009223372036854775808",
		"run\x00-9223372036854775808\x00first_started_at\x00-9223372036854775808\x00last_checkpoint_at\x009223372036854775807",
		"items_processed\x00 1",
		"run_time_ns\x00x",
		"cursor\x00\xff\xfe\x00status\x00ünïcode\x00progress_unit\x00日本語",
		"progress_total\x00\x00progress_done\x005",
		"started\x00true",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		st, err := decodeFields(fieldsOf(s))
		if err != nil {
			return
		}
		back, err := decodeFields(hashOf(st))
		if err != nil {
			t.Fatalf("state %+v, saved, does not read back: %v", st, err)
		}
		if !sameState(st, back) {
			t.Fatalf("state %+v read back as %+v", st, back)
		}
	})
}
