package cursor

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// ErrInvalid is matched (with errors.Is) by a *DecodeError: a stored cursor
// that does not decode into the job's cursor type.
var ErrInvalid = errors.New("cursor: invalid cursor")

// maxQuoted bounds how much of a bad cursor an error message repeats.
const maxQuoted = 120

// DecodeError reports a stored cursor that does not fit the cursor type the
// job declares, for example after a deploy changed the type.
type DecodeError struct {
	Type string // the Go type the cursor was decoded into
	Data string // the stored cursor, shortened
	Err  error  // the decoder's error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("cursor: stored cursor %s does not decode into %s: %v", e.Data, e.Type, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Is reports whether target is ErrInvalid or another *DecodeError.
func (e *DecodeError) Is(target error) bool {
	if target == ErrInvalid {
		return true
	}
	_, ok := target.(*DecodeError)
	return ok
}

// Encode returns the JSON form of c, the form the store saves.
func Encode[C any](c C) (json.RawMessage, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("cursor: encode %T: %w", c, err)
	}
	return b, nil
}

// Decode parses a stored cursor into a C. Empty data or JSON null mean "no
// cursor yet" and give (nil, nil). Decoding is strict: unknown object fields,
// trailing data and values of the wrong JSON type are errors, so a cursor
// saved by an older version of a job is reported rather than half-applied.
func Decode[C any](data []byte) (*C, error) {
	trimmed := bytes.Trim(data, " \t\r\n") // JSON's whitespace
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil, nil
	}
	var c C
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	err := dec.Decode(&c)
	// The value must be the whole input. dec.More alone is not enough: it
	// reports false before a closing ']' or '}', so "5]" would decode as 5.
	if err == nil && dec.InputOffset() != int64(len(trimmed)) {
		err = fmt.Errorf("trailing data after the cursor at byte %d", dec.InputOffset())
	}
	if err != nil {
		return nil, &DecodeError{Type: typeName[C](), Data: quote(trimmed), Err: err}
	}
	return &c, nil
}

func typeName[C any]() string {
	return reflect.TypeFor[C]().String()
}

func quote(b []byte) string {
	if len(b) > maxQuoted {
		return string(b[:maxQuoted]) + "…"
	}
	return string(b)
}
