package keyset

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgtype"
)

// keyKind is a column type a keyset cursor can hold. appendKey appends the
// cursor string of a value read from PostgreSQL (binary or text format); parse
// turns a cursor string into the value bound to the parameter
// "CAST($n AS sqlType)", refusing strings that are not of the type.
type keyKind struct {
	oid       uint32
	sqlType   string // the cast of the parameter: a constant, never user input
	appendKey func(dst []byte, m *pgtype.Map, oid uint32, format int16, src []byte) ([]byte, error)
	parse     func(s string) (any, error)
}

// appendFormatted adapts a function that formats one value.
func appendFormatted(format func(m *pgtype.Map, oid uint32, format int16, src []byte) (string, error)) func([]byte, *pgtype.Map, uint32, int16, []byte) ([]byte, error) {
	return func(dst []byte, m *pgtype.Map, oid uint32, formatCode int16, src []byte) ([]byte, error) {
		s, err := format(m, oid, formatCode, src)
		return append(dst, s...), err
	}
}

const supportedKeyTypes = "smallint, integer, bigint, numeric, text, varchar, char(n), uuid, date, timestamp, timestamptz"

var keyKinds = map[uint32]*keyKind{
	pgtype.Int2OID:        intKind(pgtype.Int2OID, "int2", 16),
	pgtype.Int4OID:        intKind(pgtype.Int4OID, "int4", 32),
	pgtype.Int8OID:        intKind(pgtype.Int8OID, "int8", 64),
	pgtype.TextOID:        textKind(pgtype.TextOID, "text"),
	pgtype.VarcharOID:     textKind(pgtype.VarcharOID, "varchar"),
	pgtype.BPCharOID:      textKind(pgtype.BPCharOID, "bpchar"),
	pgtype.UUIDOID:        {oid: pgtype.UUIDOID, sqlType: "uuid", appendKey: appendFormatted(formatUUID), parse: parseUUID},
	pgtype.NumericOID:     {oid: pgtype.NumericOID, sqlType: "numeric", appendKey: appendFormatted(formatNumeric), parse: parseNumeric},
	pgtype.TimestamptzOID: {oid: pgtype.TimestamptzOID, sqlType: "timestamptz", appendKey: appendFormatted(formatTimestamptz), parse: parseTimestamptz},
	pgtype.TimestampOID:   {oid: pgtype.TimestampOID, sqlType: "timestamp", appendKey: appendFormatted(formatTimestamp), parse: parseTimestamp},
	pgtype.DateOID:        {oid: pgtype.DateOID, sqlType: "date", appendKey: appendFormatted(formatDate), parse: parseDate},
}

func intKind(oid uint32, sqlType string, bits int) *keyKind {
	return &keyKind{
		oid:     oid,
		sqlType: sqlType,
		appendKey: func(dst []byte, _ *pgtype.Map, _ uint32, format int16, src []byte) ([]byte, error) {
			if format == pgtype.BinaryFormatCode {
				switch len(src) {
				case 2:
					return strconv.AppendInt(dst, int64(int16(binary.BigEndian.Uint16(src))), 10), nil
				case 4:
					return strconv.AppendInt(dst, int64(int32(binary.BigEndian.Uint32(src))), 10), nil
				case 8:
					return strconv.AppendInt(dst, int64(binary.BigEndian.Uint64(src)), 10), nil
				}
				return dst, fmt.Errorf("%s value of %d bytes", sqlType, len(src))
			}
			v, err := strconv.ParseInt(string(src), 10, bits)
			if err != nil {
				return dst, err
			}
			return strconv.AppendInt(dst, v, 10), nil
		},
		parse: func(s string) (any, error) {
			return strconv.ParseInt(s, 10, bits)
		},
	}
}

func textKind(oid uint32, sqlType string) *keyKind {
	return &keyKind{
		oid:     oid,
		sqlType: sqlType,
		appendKey: func(dst []byte, _ *pgtype.Map, _ uint32, _ int16, src []byte) ([]byte, error) {
			if !utf8.Valid(src) {
				return dst, errors.New("text is not valid UTF-8")
			}
			return append(dst, src...), nil
		},
		parse: func(s string) (any, error) {
			if !utf8.ValidString(s) {
				return nil, errors.New("not valid UTF-8")
			}
			if strings.IndexByte(s, 0) >= 0 {
				return nil, errors.New("contains a NUL byte")
			}
			return s, nil
		},
	}
}

func formatUUID(m *pgtype.Map, oid uint32, format int16, src []byte) (string, error) {
	var u pgtype.UUID
	if format == pgtype.BinaryFormatCode && len(src) == 16 {
		u = pgtype.UUID{Bytes: [16]byte(src), Valid: true}
	} else if err := m.Scan(oid, format, src, &u); err != nil {
		return "", err
	}
	return u.String(), nil
}

// parseUUID reads the canonical form only (8-4-4-4-12 hex digits), the one
// formatUUID writes.
func parseUUID(s string) (any, error) {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return nil, errors.New("not a uuid in 8-4-4-4-12 form")
	}
	var u pgtype.UUID
	digits := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:36]
	if _, err := hex.Decode(u.Bytes[:], []byte(digits)); err != nil {
		return nil, fmt.Errorf("not a uuid: %w", err)
	}
	u.Valid = true
	return u, nil
}

func formatNumeric(m *pgtype.Map, oid uint32, format int16, src []byte) (string, error) {
	var n pgtype.Numeric
	if err := m.Scan(oid, format, src, &n); err != nil {
		return "", err
	}
	v, err := n.Value()
	if err != nil {
		return "", err
	}
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("numeric value %v", v)
	}
	return s, nil
}

// parseNumeric reads a decimal ("-12.5", "1e3"), NaN, Infinity or
// -Infinity, exactly: the value is bound as a pgtype.Numeric, an integer
// and a power of ten.
func parseNumeric(s string) (any, error) {
	if s == "" {
		return nil, errors.New("empty numeric")
	}
	var n pgtype.Numeric
	if err := n.Scan(s); err != nil {
		return nil, err
	}
	return n, nil
}

const (
	timestamptzLayout = "2006-01-02T15:04:05.999999Z07:00"
	timestampLayout   = "2006-01-02T15:04:05.999999"
	dateLayout        = "2006-01-02"
)

func infinity(im pgtype.InfinityModifier) string {
	if im == pgtype.Infinity {
		return "infinity"
	}
	return "-infinity"
}

func parseInfinity(s string) pgtype.InfinityModifier {
	switch s {
	case "infinity":
		return pgtype.Infinity
	case "-infinity":
		return pgtype.NegativeInfinity
	}
	return pgtype.Finite
}

// checkYear refuses years that RFC 3339 cannot write (PostgreSQL's BC
// dates and years past 9999).
func checkYear(t time.Time) error {
	if y := t.Year(); y < 1 || y > 9999 {
		return fmt.Errorf("year %d outside 1 to 9999, which keyset cursors do not support", y)
	}
	return nil
}

func formatTimestamptz(m *pgtype.Map, oid uint32, format int16, src []byte) (string, error) {
	var ts pgtype.Timestamptz
	if err := m.Scan(oid, format, src, &ts); err != nil {
		return "", err
	}
	if ts.InfinityModifier != pgtype.Finite {
		return infinity(ts.InfinityModifier), nil
	}
	t := ts.Time.UTC()
	if err := checkYear(t); err != nil {
		return "", err
	}
	return t.Format(timestamptzLayout), nil
}

func parseTimestamptz(s string) (any, error) {
	if im := parseInfinity(s); im != pgtype.Finite {
		return pgtype.Timestamptz{InfinityModifier: im, Valid: true}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return nil, err
	}
	if err := checkTime(t); err != nil {
		return nil, err
	}
	return pgtype.Timestamptz{Time: t, Valid: true}, nil
}

// checkTime refuses what PostgreSQL would round or cannot hold.
func checkTime(t time.Time) error {
	if t.Nanosecond()%1000 != 0 {
		return errors.New("finer than a microsecond")
	}
	return checkYear(t)
}

func formatTimestamp(m *pgtype.Map, oid uint32, format int16, src []byte) (string, error) {
	var ts pgtype.Timestamp
	if err := m.Scan(oid, format, src, &ts); err != nil {
		return "", err
	}
	if ts.InfinityModifier != pgtype.Finite {
		return infinity(ts.InfinityModifier), nil
	}
	if err := checkYear(ts.Time); err != nil {
		return "", err
	}
	return ts.Time.Format(timestampLayout), nil
}

func parseTimestamp(s string) (any, error) {
	if im := parseInfinity(s); im != pgtype.Finite {
		return pgtype.Timestamp{InfinityModifier: im, Valid: true}, nil
	}
	t, err := time.Parse(timestampLayout, s)
	if err != nil {
		return nil, err
	}
	if err := checkTime(t); err != nil {
		return nil, err
	}
	return pgtype.Timestamp{Time: t, Valid: true}, nil
}

func formatDate(m *pgtype.Map, oid uint32, format int16, src []byte) (string, error) {
	var d pgtype.Date
	if err := m.Scan(oid, format, src, &d); err != nil {
		return "", err
	}
	if d.InfinityModifier != pgtype.Finite {
		return infinity(d.InfinityModifier), nil
	}
	if err := checkYear(d.Time); err != nil {
		return "", err
	}
	return d.Time.Format(dateLayout), nil
}

func parseDate(s string) (any, error) {
	if im := parseInfinity(s); im != pgtype.Finite {
		return pgtype.Date{InfinityModifier: im, Valid: true}, nil
	}
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return nil, err
	}
	if err := checkYear(t); err != nil {
		return nil, err
	}
	return pgtype.Date{Time: t, Valid: true}, nil
}
