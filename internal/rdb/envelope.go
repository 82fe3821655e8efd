package rdb

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// ErrBadEnvelope is matched by errors parsing an envelope.
var ErrBadEnvelope = errors.New("rdb: malformed job envelope")

// Envelope is a job as it travels through Redis: queue lists, in-flight
// hashes and the job hashes of the scheduled, retry and dead sets all hold
// it as one string, so moving a job never touches more than one key per job.
//
// Its text form is a header of '|'-separated fields, then three byte strings
// whose lengths the header gives:
//
//	1|<id>|<kind>|<queue>|<attempt>|<recovered>|<unique hash or ->|<max attempts>|<enqueued at, unix µs>|<len meta>|<len unique key>|<meta JSON><unique key><args JSON>
//
// Scripts read the id (field 2), the queue (field 4) and the unique hash
// (field 7), and rewrite the recovered count (field 6). Ids, kinds and queue
// names never contain '|'; the unique hash is hex.
type Envelope struct {
	ID, Kind, Queue string
	Attempt         int
	Recovered       int
	UniqueHash      string
	MaxAttempts     int
	EnqueuedAt      int64 // unix microseconds
	Meta            []byte
	UniqueKey       string
	Args            []byte
}

// Append appends e's text form to dst.
func (e *Envelope) Append(dst []byte) []byte {
	dst = append(dst, "1|"...)
	dst = append(dst, e.ID...)
	dst = append(dst, '|')
	dst = append(dst, e.Kind...)
	dst = append(dst, '|')
	dst = append(dst, e.Queue...)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(e.Attempt), 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(e.Recovered), 10)
	dst = append(dst, '|')
	if e.UniqueHash == "" {
		dst = append(dst, '-')
	} else {
		dst = append(dst, e.UniqueHash...)
	}
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(e.MaxAttempts), 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, e.EnqueuedAt, 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(len(e.Meta)), 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(len(e.UniqueKey)), 10)
	dst = append(dst, '|')
	dst = append(dst, e.Meta...)
	dst = append(dst, e.UniqueKey...)
	return append(dst, e.Args...)
}

// ParseEnvelope parses an envelope's text form.
func ParseEnvelope(s string) (Envelope, error) {
	var e Envelope
	var f [11]string
	rest := s
	for i := range f {
		j := strings.IndexByte(rest, '|')
		if j < 0 {
			return e, fmt.Errorf("%w: %d header fields, want 11: %q", ErrBadEnvelope, i, clip(s))
		}
		f[i], rest = rest[:j], rest[j+1:]
	}
	if f[0] != "1" {
		return e, fmt.Errorf("%w: version %q: %q", ErrBadEnvelope, f[0], clip(s))
	}
	var nums [6]int64
	for i, k := range []int{4, 5, 7, 8, 9, 10} {
		n, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil || n < 0 {
			return e, fmt.Errorf("%w: field %d %q: %q", ErrBadEnvelope, k+1, f[k], clip(s))
		}
		nums[i] = n
	}
	// Each length is checked against what is left, never added to another
	// unchecked: two huge lengths must not overflow into a small sum.
	metaLen, keyLen, left := nums[4], nums[5], int64(len(rest))
	if metaLen > left || keyLen > left-metaLen {
		return e, fmt.Errorf("%w: lengths %d+%d exceed the %d bytes left: %q", ErrBadEnvelope, metaLen, keyLen, left, clip(s))
	}
	e.ID, e.Kind, e.Queue = f[1], f[2], f[3]
	e.Attempt, e.Recovered = int(nums[0]), int(nums[1])
	if f[6] != "-" {
		e.UniqueHash = f[6]
	}
	e.MaxAttempts, e.EnqueuedAt = int(nums[2]), nums[3]
	if metaLen > 0 {
		e.Meta = []byte(rest[:metaLen])
	}
	e.UniqueKey = rest[metaLen : metaLen+keyLen]
	e.Args = []byte(rest[metaLen+keyLen:])
	if e.ID == "" || e.Kind == "" || e.Queue == "" {
		return e, fmt.Errorf("%w: empty id, kind or queue: %q", ErrBadEnvelope, clip(s))
	}
	return e, nil
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "…"
	}
	return s
}

// EnvelopeEnqueuedAt returns the enqueued-at field (unix µs) of an envelope's
// header, without parsing the rest: it is readable even when the lengths that
// follow it are not. ok is false when the header has no such number.
func EnvelopeEnqueuedAt(s string) (us int64, ok bool) {
	rest, ok := strings.CutPrefix(s, "1|")
	if !ok {
		return 0, false
	}
	// Skip id, kind, queue, attempt, recovered, unique hash, max attempts.
	for range 7 {
		i := strings.IndexByte(rest, '|')
		if i < 0 {
			return 0, false
		}
		rest = rest[i+1:]
	}
	i := strings.IndexByte(rest, '|')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(rest[:i], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// EnvelopeID returns the id the fetch script files an envelope under: its id
// field, or "bad-<lease>" when it has none.
func EnvelopeID(s string, lease int64) string {
	if rest, ok := strings.CutPrefix(s, "1|"); ok {
		if i := strings.IndexByte(rest, '|'); i > 0 {
			return rest[:i]
		}
	}
	return "bad-" + strconv.FormatInt(lease, 10)
}
