package jobtype

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends ev's JSON to dst: the same text json.Marshal makes,
// without reflection (events are encoded for every job a runner moves).
func (ev *Event) AppendJSON(dst []byte) ([]byte, error) {
	dst = append(dst, '{')
	if ev.ID != "" {
		dst = appendKey(dst, "id", true)
		dst = appendString(dst, ev.ID)
	}
	dst = appendKey(dst, "type", ev.ID == "")
	dst = appendString(dst, string(ev.Type))
	dst = appendKey(dst, "jid", false)
	dst = appendString(dst, ev.JobID)
	if ev.Kind != "" {
		dst = appendKey(dst, "kind", false)
		dst = appendString(dst, ev.Kind)
	}
	if ev.Queue != "" {
		dst = appendKey(dst, "queue", false)
		dst = appendString(dst, ev.Queue)
	}
	if ev.Attempt != 0 {
		dst = appendKey(dst, "attempt", false)
		dst = strconv.AppendInt(dst, int64(ev.Attempt), 10)
	}
	var err error
	dst = appendKey(dst, "at", false)
	if dst, err = appendTime(dst, ev.At); err != nil {
		return nil, err
	}
	if ev.Error != "" {
		dst = appendKey(dst, "error", false)
		dst = appendString(dst, ev.Error)
	}
	if ev.RunAt != nil {
		dst = appendKey(dst, "run_at", false)
		if dst, err = appendTime(dst, *ev.RunAt); err != nil {
			return nil, err
		}
	}
	if ev.Progress != nil {
		dst = appendKey(dst, "progress", false)
		b, err := json.Marshal(ev.Progress)
		if err != nil {
			return nil, err
		}
		dst = append(dst, b...)
	}
	if len(ev.Meta) > 0 {
		dst = appendKey(dst, "meta", false)
		keys := make([]string, 0, len(ev.Meta))
		for k := range ev.Meta {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		dst = append(dst, '{')
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			dst = appendString(dst, ev.Meta[k])
		}
		dst = append(dst, '}')
	}
	return append(dst, '}'), nil
}

func appendKey(dst []byte, k string, first bool) []byte {
	if !first {
		dst = append(dst, ',')
	}
	dst = append(dst, '"')
	dst = append(dst, k...)
	return append(dst, '"', ':')
}

func appendTime(dst []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y >= 10000 {
		// json.Marshal refuses these too.
		_, err := t.MarshalJSON()
		return nil, err
	}
	dst = append(dst, '"')
	dst = t.AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaped as encoding/json does
// (HTML-safe, invalid UTF-8 as U+FFFD, U+2028 and U+2029 escaped).
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
