package keyset

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
)

// The timestamptz cursor is in UTC whatever location the decoder puts the
// time in (pgx uses time.Local unless told otherwise).
func TestTimestamptzCursorIsUTC(t *testing.T) {
	t.Parallel()
	m := pgtype.NewMap()
	m.RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.FixedZone("IST", 5*3600+1800)}})

	// One microsecond after PostgreSQL's epoch, 2000-01-01 00:00:00 UTC.
	s, err := formatTimestamptz(m, pgtype.TimestamptzOID, pgtype.BinaryFormatCode, binary.BigEndian.AppendUint64(nil, 1))
	require.NoError(t, err)
	require.Equal(t, "2000-01-01T00:00:00.000001Z", s)

	s, err = formatTimestamptz(m, pgtype.TimestamptzOID, pgtype.TextFormatCode, []byte("2000-01-01 05:30:00.000001+05:30"))
	require.NoError(t, err)
	require.Equal(t, "2000-01-01T00:00:00.000001Z", s)

	v, err := parseTimestamptz("2000-01-01T05:30:00.000001+05:30")
	require.NoError(t, err)
	require.True(t, v.(pgtype.Timestamptz).Time.Equal(time.Date(2000, 1, 1, 0, 0, 0, 1000, time.UTC)), "an offset in a cursor is honoured")
}
