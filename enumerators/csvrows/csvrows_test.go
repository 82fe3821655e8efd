package csvrows_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/gocarina/gocsv"
	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/csvrows"
	"github.com/iterjob/iterjob/enumerators/enumtest"
)

type csvRow struct {
	ID     int     `csv:"id"`
	Name   string  `csv:"name"`
	Note   string  `csv:"note"`
	Amount float64 `csv:"amount"`
}

// csvSample is a CSV file as a list of raw records (header first), so tests
// know where each record ends. It has a BOM before a quoted header, CRLF
// and LF line ends, quoted fields with line breaks, commas and quotes,
// non-ASCII text, and a blank line.
var csvSample = []string{
	"\xEF\xBB\xBF\"id\",name,amount,note\r\n",
	"1,Ünïcödé,1.5,plain\r\n",
	"2,\"Smith, John\",2,\"He said \"\"hi\"\"\"\n",
	"3,\"multi\r\nline\nname\",3,\"a, b\"\n",
	"\n4,日本語,-4,\"ends with a line break\n\"\n",
	"5,\"quote \"\" and, comma\",5e3,\"\"\n",
	"6,tab\tand space ,0,\"€\r\n\r\n\"\n",
}

var csvSampleRows = []csvRow{
	{1, "Ünïcödé", "plain", 1.5},
	{2, "Smith, John", `He said "hi"`, 2},
	{3, "multi\nline\nname", "a, b", 3},
	{4, "日本語", "ends with a line break\n", -4},
	{5, `quote " and, comma`, "", 5000},
	{6, "tab\tand space ", "€\n\n", 0},
}

// sampleData returns the sample, with or without a line break after the
// last record, and the cursor expected after each row.
func sampleData(trailingNewline bool) ([]byte, []csvrows.Cursor) {
	var data []byte
	var cursors []csvrows.Cursor
	for i, rec := range csvSample {
		if i == len(csvSample)-1 && !trailingNewline {
			rec = strings.TrimSuffix(rec, "\n")
		}
		data = append(data, rec...)
		if i > 0 {
			line := int64(bytes.Count(data, []byte("\n")))
			if !bytes.HasSuffix(data, []byte("\n")) {
				line++
			}
			cursors = append(cursors, csvrows.Cursor{Offset: int64(len(data)), Line: line})
		}
	}
	return data, cursors
}

// plainReader hides every method but Read.
type plainReader struct{ io.Reader }

// bareSeeker hides Size, so the enumerator must measure by seeking.
type bareSeeker struct{ io.ReadSeeker }

// fileCounter opens files and counts those not yet closed.
type fileCounter struct{ open atomic.Int64 }

func (fc *fileCounter) Open(name string) (fs.File, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fc.open.Add(1)
	return &countedFile{File: f, fc: fc}, nil
}

func (fc *fileCounter) Count() int { return int(fc.open.Load()) }

type countedFile struct {
	*os.File
	fc   *fileCounter
	once sync.Once
}

func (f *countedFile) Close() error {
	f.once.Do(func() { f.fc.open.Add(-1) })
	return f.File.Close()
}

func writeTemp(t *testing.T, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data.csv")
	require.NoError(t, os.WriteFile(path, data, 0o600))
	return path
}

// malformed is the sample with a bad amount on line 6 (after a multi-line
// record), so the first three rows are yielded before the error.
var malformed = strings.Join(csvSample[:4], "") + "4,x,not-a-number,y\n" + strings.Join(csvSample[5:], "")

type csvSource struct {
	name string
	// build returns the enumerator over data; open counts the files it
	// opened and has not closed (nil when it opens none).
	build func(t *testing.T, data []byte) (build func(c *csvrows.Cursor) enumerators.Enumerator[csvRow, csvrows.Cursor], open func() int)
}

var csvSources = []csvSource{
	{"File", func(t *testing.T, data []byte) (func(*csvrows.Cursor) enumerators.Enumerator[csvRow, csvrows.Cursor], func() int) {
		path := writeTemp(t, data)
		fc := &fileCounter{}
		return func(c *csvrows.Cursor) enumerators.Enumerator[csvRow, csvrows.Cursor] {
			return csvrows.FromFile[csvRow](path, c, csvrows.Config{Open: fc.Open})
		}, fc.Count
	}},
	{"BytesReader", func(_ *testing.T, data []byte) (func(*csvrows.Cursor) enumerators.Enumerator[csvRow, csvrows.Cursor], func() int) {
		return func(c *csvrows.Cursor) enumerators.Enumerator[csvRow, csvrows.Cursor] {
			return csvrows.FromReader[csvRow](bytes.NewReader(data), c, csvrows.Config{})
		}, nil
	}},
	{"ReadSeeker", func(_ *testing.T, data []byte) (func(*csvrows.Cursor) enumerators.Enumerator[csvRow, csvrows.Cursor], func() int) {
		return func(c *csvrows.Cursor) enumerators.Enumerator[csvRow, csvrows.Cursor] {
			return csvrows.FromReader[csvRow](bareSeeker{bytes.NewReader(data)}, c, csvrows.Config{})
		}, nil
	}},
	{"PlainReader", func(_ *testing.T, data []byte) (func(*csvrows.Cursor) enumerators.Enumerator[csvRow, csvrows.Cursor], func() int) {
		return func(c *csvrows.Cursor) enumerators.Enumerator[csvRow, csvrows.Cursor] {
			return csvrows.FromReader[csvRow](plainReader{bytes.NewReader(data)}, c, csvrows.Config{})
		}, nil
	}},
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, src := range csvSources {
		for _, trailing := range []bool{true, false} {
			t.Run(src.name+"/trailingNewline="+strconv.FormatBool(trailing), func(t *testing.T) {
				t.Parallel()
				data, _ := sampleData(trailing)
				build, open := src.build(t, data)
				failing, failingOpen := src.build(t, []byte(malformed))
				enumtest.Run(t, enumtest.Case[csvRow, csvrows.Cursor]{
					Build: func(_ context.Context, c *csvrows.Cursor) (enumerators.Enumerator[csvRow, csvrows.Cursor], error) {
						return build(c), nil
					},
					Want: csvSampleRows,
					Open: func() int {
						if open == nil {
							return 0
						}
						return open() + failingOpen()
					},
					Failing: func(context.Context) (enumerators.Enumerator[csvRow, csvrows.Cursor], error) {
						return failing(nil), nil
					},
					FailErr: csvrows.ErrRow,
				})
			})
		}
	}
}

func TestCursorsAreExactOffsetsAndLines(t *testing.T) {
	t.Parallel()
	for _, src := range csvSources {
		for _, trailing := range []bool{true, false} {
			t.Run(src.name+"/trailingNewline="+strconv.FormatBool(trailing), func(t *testing.T) {
				t.Parallel()
				data, want := sampleData(trailing)
				build, _ := src.build(t, data)
				_, cursors, err := enumerators.Collect(t.Context(), build(nil))
				require.NoError(t, err)
				require.Equal(t, want, cursors, "offsets count the BOM; lines count the breaks inside quoted fields")

				// Resumed enumerations give the same absolute cursors.
				_, resumed, err := enumerators.Collect(t.Context(), build(&cursors[2]))
				require.NoError(t, err)
				require.Equal(t, want[3:], resumed)
			})
		}
	}
}

func TestCursorEncoding(t *testing.T) {
	t.Parallel()
	raw, err := cursor.Encode(csvrows.Cursor{Offset: 1 << 40, Line: 12345})
	require.NoError(t, err)
	require.JSONEq(t, `{"offset":1099511627776,"line":12345}`, string(raw))
	back, err := cursor.Decode[csvrows.Cursor](raw)
	require.NoError(t, err)
	require.Equal(t, csvrows.Cursor{Offset: 1 << 40, Line: 12345}, *back)
}

func TestMalformedRowNamesItsLine(t *testing.T) {
	t.Parallel()
	head := "id,name,note,amount\n" + // line 1
		"1,a,\"two\nlines\",1\n" // lines 2-3
	cases := []struct {
		name   string
		data   string
		line   int64
		column string
		cause  error
		good   int // rows yielded before the error
	}{
		{"BareQuote", head + "2,b\"c,x,2\n", 4, "", csv.ErrBareQuote, 1},
		{"ExtraneousQuote", head + "2,\"b\"c,x,2\n", 4, "", csv.ErrQuote, 1},
		{"QuoteInSecondLineOfField", head + "2,b,\"x\ny\"z\",2\n", 5, "", csv.ErrQuote, 1},
		{"TooFewFields", head + "2,b,c,2\n3,c,d\n", 5, "", csv.ErrFieldCount, 2},
		{"TooManyFields", head + "2,b,\"x\ny\",2,extra\n", 4, "", csv.ErrFieldCount, 1},
		{"BadInt", head + "x,b,c,2\n", 4, "id", strconv.ErrSyntax, 1},
		{"BadFloat", head + "2,b,c,2\n3,c,\"x\ny\",2.5.1\n", 6, "amount", strconv.ErrSyntax, 2},
		// A value that does not decode, on the third line of its own record:
		// the line is the field's, not the record's first.
		{"BadValueOnThirdLineOfRecord", head + "2,\"b\nb\",\"c\nc\",oops\n", 6, "amount", strconv.ErrSyntax, 1},
		{"UnterminatedQuote", head + "2,b,\"never closed\n3,c,d,4\n", 5, "", csv.ErrQuote, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, src := range csvSources {
				build, open := src.build(t, []byte(tc.data))
				items, cursors, err := enumerators.Collect(t.Context(), build(nil))
				require.Error(t, err, src.name)
				var rowErr *csvrows.RowError
				require.ErrorAs(t, err, &rowErr, src.name)
				require.ErrorIs(t, err, csvrows.ErrRow)
				require.ErrorIs(t, err, tc.cause, src.name)
				require.Equal(t, tc.line, rowErr.Line, "%s: %v", src.name, err)
				require.Equal(t, tc.column, rowErr.Column, src.name)
				require.True(t, strings.HasPrefix(err.Error(), "csvrows: line "+strconv.FormatInt(tc.line, 10)+": "), err.Error())
				require.Len(t, items, tc.good, "%s: rows before the malformed one are yielded", src.name)
				if open != nil {
					require.Zero(t, open(), "%s: file closed after the error", src.name)
				}

				// Resuming from the last good row, as the runner would after
				// the failure, fails again at the same absolute line.
				last := cursors[len(cursors)-1]
				build, _ = src.build(t, []byte(tc.data))
				_, _, err = enumerators.Collect(t.Context(), build(&last))
				require.ErrorAs(t, err, &rowErr, src.name)
				require.Equal(t, tc.line, rowErr.Line, "%s: line after resuming from %+v", src.name, last)
			}
		})
	}
}

func TestMalformedRowLineIsAbsoluteAfterResume(t *testing.T) {
	t.Parallel()
	data, cursors := sampleData(true)
	bad := append(bytes.Clone(data), "7,\"x\ny\",not-a-number,z\n"...)
	badLine := cursors[len(cursors)-1].Line + 2 // the amount field is on the second line
	for _, src := range csvSources {
		for i := range cursors {
			build, _ := src.build(t, bad)
			items, _, err := enumerators.Collect(t.Context(), build(&cursors[i]))
			var rowErr *csvrows.RowError
			require.ErrorAs(t, err, &rowErr, "%s from %+v", src.name, cursors[i])
			require.Equal(t, badLine, rowErr.Line, "%s from %+v", src.name, cursors[i])
			require.Equal(t, csvSampleRows[i+1:], append([]csvRow{}, items...))
		}
	}
}

func TestRejectsInvalidCursors(t *testing.T) {
	t.Parallel()
	data, cursors := sampleData(true)
	headerEnd := int64(len(csvSample[0]))
	end := cursors[len(cursors)-1]
	cases := map[string]csvrows.Cursor{
		"NegativeOffset":           {Offset: -1, Line: 1},
		"ZeroLine":                 {Offset: headerEnd, Line: 0},
		"MoreLinesThanBytes":       {Offset: 3, Line: 10},
		"InsideHeader":             {Offset: 5, Line: 1},
		"EndOfHeaderWrongLine":     {Offset: headerEnd, Line: 2},
		"BeyondEnd":                {Offset: end.Offset + 1, Line: end.Line + 1},
		"FarBeyondEnd":             {Offset: end.Offset + 1<<20, Line: end.Line},
		"MidRow":                   {Offset: cursors[0].Offset + 2, Line: cursors[0].Line + 1},
		"MidRowAtEndOfData":        {Offset: end.Offset - 1, Line: end.Line},
		"LineOfHeaderAfterHeader":  {Offset: cursors[0].Offset, Line: 1},
		"LineTooLargeForTheOffset": {Offset: cursors[0].Offset, Line: cursors[0].Offset},
	}
	for name, c := range cases {
		for _, src := range csvSources {
			build, open := src.build(t, data)
			items, _, err := enumerators.Collect(t.Context(), build(&c))
			require.ErrorIs(t, err, enumerators.ErrInvalidCursor, "%s %s %+v", name, src.name, c)
			require.Empty(t, items)
			if open != nil {
				require.Zero(t, open(), "%s: file closed", name)
			}
		}
	}

	// The cursor at the end of the data, and at the end of the header, are
	// valid.
	for _, src := range csvSources {
		build, _ := src.build(t, data)
		items, _, err := enumerators.Collect(t.Context(), build(&end))
		require.NoError(t, err, src.name)
		require.Empty(t, items)
		build, _ = src.build(t, data)
		items, _, err = enumerators.Collect(t.Context(), build(&csvrows.Cursor{Offset: headerEnd, Line: 1}))
		require.NoError(t, err, src.name)
		require.Equal(t, csvSampleRows, items)
	}

	// A header that starts after blank lines ends on line 3: a cursor
	// placing a row's end before it is invalid, though its offset is fine.
	late := []byte("\n\nid,name\n1,a\n2,b\n")
	rowEnd := int64(bytes.Index(late, []byte("2,b")))
	for _, src := range csvSources {
		build, _ := src.build(t, late)
		_, _, err := enumerators.Collect(t.Context(), build(&csvrows.Cursor{Offset: rowEnd, Line: 2}))
		require.ErrorIs(t, err, enumerators.ErrInvalidCursor, src.name)
		build, _ = src.build(t, late)
		items, _, err := enumerators.Collect(t.Context(), build(&csvrows.Cursor{Offset: rowEnd, Line: 4}))
		require.NoError(t, err, src.name)
		require.Equal(t, []csvRow{{ID: 2, Name: "b"}}, items)
	}

	// Data with no header fits no cursor.
	for _, src := range csvSources {
		build, _ := src.build(t, []byte("\n\n"))
		_, _, err := enumerators.Collect(t.Context(), build(&csvrows.Cursor{Offset: 1, Line: 1}))
		require.ErrorIs(t, err, enumerators.ErrInvalidCursor, src.name)
	}
}

func TestFileIsClosedOnEveryPath(t *testing.T) {
	t.Parallel()
	data, cursors := sampleData(true)
	path := writeTemp(t, data)
	fc := &fileCounter{}
	cfg := csvrows.Config{Open: fc.Open}

	// Early stop.
	calls := 0
	err := csvrows.FromFile[csvRow](path, nil, cfg).Enumerate(t.Context(), func(csvRow, csvrows.Cursor) bool {
		calls++
		require.Equal(t, 1, fc.Count(), "the file is open while rows are yielded")
		return false
	})
	require.NoError(t, err)
	require.Equal(t, 1, calls)
	require.Zero(t, fc.Count(), "early stop")

	// End, from the start and resumed.
	_, _, err = enumerators.Collect(t.Context(), csvrows.FromFile[csvRow](path, nil, cfg))
	require.NoError(t, err)
	_, _, err = enumerators.Collect(t.Context(), csvrows.FromFile[csvRow](path, &cursors[3], cfg))
	require.NoError(t, err)
	require.Zero(t, fc.Count(), "end")

	// Malformed row, invalid cursor, cancelled context.
	bad := writeTemp(t, []byte(malformed))
	_, _, err = enumerators.Collect(t.Context(), csvrows.FromFile[csvRow](bad, nil, cfg))
	require.ErrorIs(t, err, csvrows.ErrRow)
	_, _, err = enumerators.Collect(t.Context(), csvrows.FromFile[csvRow](path, &csvrows.Cursor{Offset: 1 << 30, Line: 1000}, cfg))
	require.ErrorIs(t, err, enumerators.ErrInvalidCursor)
	ctx, cancel := context.WithCancel(t.Context())
	err = csvrows.FromFile[csvRow](path, nil, cfg).Enumerate(ctx, func(csvRow, csvrows.Cursor) bool {
		cancel()
		return true
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, fc.Count(), "errors")

	// A missing file is an error that says so.
	_, _, err = enumerators.Collect(t.Context(), csvrows.FromFile[csvRow](filepath.Join(t.TempDir(), "missing.csv"), nil, cfg))
	require.ErrorIs(t, err, fs.ErrNotExist)
}

func TestContextCancelledStopsBetweenRows(t *testing.T) {
	t.Parallel()
	data, _ := sampleData(true)
	ctx, cancel := context.WithCancel(t.Context())
	var got []csvRow
	err := csvrows.FromReader[csvRow](bytes.NewReader(data), nil, csvrows.Config{}).Enumerate(ctx, func(r csvRow, _ csvrows.Cursor) bool {
		got = append(got, r)
		if len(got) == 2 {
			cancel()
		}
		return true
	})
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, csvSampleRows[:2], got)
}

func TestReadErrorSurfacesAfterTheRowsBeforeIt(t *testing.T) {
	t.Parallel()
	data, cursors := sampleData(true)
	errDisk := errors.New("disk on fire")
	src := io.MultiReader(bytes.NewReader(data[:cursors[1].Offset]), iotest.ErrReader(errDisk))
	items, _, err := enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](src, nil, csvrows.Config{}))
	require.ErrorIs(t, err, errDisk)
	require.False(t, errors.Is(err, csvrows.ErrRow), "an I/O error is not a malformed row")
	require.Equal(t, csvSampleRows[:2], items)
}

func TestPlainReaderEnumeratesOnce(t *testing.T) {
	t.Parallel()
	data, _ := sampleData(true)
	e := csvrows.FromReader[csvRow](plainReader{bytes.NewReader(data)}, nil, csvrows.Config{})
	items, _, err := enumerators.Collect(t.Context(), e)
	require.NoError(t, err)
	require.Equal(t, csvSampleRows, items)
	_, _, err = enumerators.Collect(t.Context(), e)
	require.ErrorIs(t, err, csvrows.ErrReaderReused)

	// A seekable source can be enumerated again: it is read from offset 0.
	r := bytes.NewReader(data)
	e = csvrows.FromReader[csvRow](r, nil, csvrows.Config{})
	for range 2 {
		items, _, err = enumerators.Collect(t.Context(), e)
		require.NoError(t, err)
		require.Equal(t, csvSampleRows, items)
	}
}

func TestProgressCountsBytes(t *testing.T) {
	t.Parallel()
	data, cursors := sampleData(true)
	size := int64(len(data))
	path := writeTemp(t, data)
	mid := cursors[2]

	progress := func(e enumerators.Enumerator[csvRow, csvrows.Cursor], c *csvrows.Cursor) enumerators.Progress {
		t.Helper()
		p, err := e.(enumerators.ProgressReporter[csvrows.Cursor]).Progress(t.Context(), c)
		require.NoError(t, err)
		return p
	}

	file := csvrows.FromFile[csvRow](path, nil, csvrows.Config{})
	require.Equal(t, enumerators.Progress{Done: 0, Total: size, Unit: "bytes"}, progress(file, nil), "before Enumerate")
	require.Equal(t, enumerators.Progress{Done: mid.Offset, Total: size, Unit: "bytes"}, progress(file, &mid))
	resumed := csvrows.FromFile[csvRow](path, &mid, csvrows.Config{})
	require.Equal(t, enumerators.Progress{Done: mid.Offset, Total: size, Unit: "bytes"}, progress(resumed, nil), "the starting cursor before the first row")

	br := csvrows.FromReader[csvRow](bytes.NewReader(data), nil, csvrows.Config{})
	require.Equal(t, enumerators.Progress{Done: mid.Offset, Total: size, Unit: "bytes"}, progress(br, &mid), "Size method")

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	osFile := csvrows.FromReader[csvRow](f, nil, csvrows.Config{})
	require.Equal(t, enumerators.Progress{Done: mid.Offset, Total: size, Unit: "bytes"}, progress(osFile, &mid), "Stat method")

	bare := csvrows.FromReader[csvRow](bareSeeker{bytes.NewReader(data)}, nil, csvrows.Config{})
	require.Equal(t, int64(-1), progress(bare, &mid).Total, "unknown before Enumerate")
	var during enumerators.Progress
	err = bare.Enumerate(t.Context(), func(_ csvRow, c csvrows.Cursor) bool {
		during = progress(bare, &c)
		return false
	})
	require.NoError(t, err)
	require.Equal(t, enumerators.Progress{Done: cursors[0].Offset, Total: size, Unit: "bytes"}, during, "measured by seeking, and Progress does not disturb the reading")

	plain := csvrows.FromReader[csvRow](plainReader{bytes.NewReader(data)}, nil, csvrows.Config{})
	require.Equal(t, enumerators.Progress{Done: mid.Offset, Total: -1, Unit: "bytes"}, progress(plain, &mid))
}

func TestProgressDoesNotDisturbAReadInFlight(t *testing.T) {
	t.Parallel()
	data, _ := sampleData(true)
	for _, src := range csvSources {
		build, _ := src.build(t, data)
		e := build(nil)
		pr := e.(enumerators.ProgressReporter[csvrows.Cursor])
		var got []csvRow
		err := e.Enumerate(t.Context(), func(r csvRow, c csvrows.Cursor) bool {
			got = append(got, r)
			p, err := pr.Progress(t.Context(), &c)
			require.NoError(t, err)
			require.Equal(t, c.Offset, p.Done)
			return true
		})
		require.NoError(t, err)
		require.Equal(t, csvSampleRows, got, src.name)
	}
}

func TestConfigOptions(t *testing.T) {
	t.Parallel()
	data := "# exported 2024-01-01\n" +
		"id; name; note; amount\n" +
		"# a comment between rows; it counts as a line\n" +
		"1; Ann; \"x; y\"; 2.5\n" +
		"2; Bob; say \"hi\"; 3\n"
	cfg := csvrows.Config{Comma: ';', Comment: '#', TrimLeadingSpace: true, LazyQuotes: true}
	items, cursors, err := enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](strings.NewReader(data), nil, cfg))
	require.NoError(t, err)
	require.Equal(t, []csvRow{{1, "Ann", "x; y", 2.5}, {2, "Bob", `say "hi"`, 3}}, items)
	require.Equal(t, csvrows.Cursor{Offset: int64(strings.Index(data, "2; Bob")), Line: 4}, cursors[0])
	items, _, err = enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](strings.NewReader(data), &cursors[0], cfg))
	require.NoError(t, err)
	require.Equal(t, []csvRow{{2, "Bob", `say "hi"`, 3}}, items)

	// Without LazyQuotes the bare quote in row 2 (line 5) is malformed.
	cfg.LazyQuotes = false
	_, _, err = enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](strings.NewReader(data), nil, cfg))
	var rowErr *csvrows.RowError
	require.ErrorAs(t, err, &rowErr)
	require.Equal(t, int64(5), rowErr.Line)

	// gocsv's default reader was not swapped for ours: it still reads
	// commas.
	var viaGocsv []csvRow
	require.NoError(t, gocsv.UnmarshalString("id,name\n7,Zed\n", &viaGocsv))
	require.Equal(t, []csvRow{{ID: 7, Name: "Zed"}}, viaGocsv)

	for _, bad := range []csvrows.Config{{Comma: '"'}, {Comma: '\n'}, {Comment: ','}, {Comma: ';', Comment: ';'}, {Comma: -1}} {
		_, _, err := enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](strings.NewReader(data), nil, bad))
		require.ErrorIs(t, err, csvrows.ErrConfig, "%+v", bad)
		require.ErrorContains(t, err, "csvrows: invalid config: ", "%+v", bad)
	}
}

func TestHeaderRequirements(t *testing.T) {
	t.Parallel()
	for _, empty := range []string{"", "\xEF\xBB\xBF", "\n\n", "# only a comment\n"} {
		cfg := csvrows.Config{Comment: '#'}
		items, _, err := enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](strings.NewReader(empty), nil, cfg))
		require.NoError(t, err, "%q", empty)
		require.Empty(t, items)
		cfg.RequireHeader = true
		_, _, err = enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](strings.NewReader(empty), nil, cfg))
		require.ErrorIs(t, err, csvrows.ErrHeader, "%q", empty)
	}

	// A header alone is zero rows, even with RequireHeader.
	items, _, err := enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](strings.NewReader("id,name,note,amount\n"), nil, csvrows.Config{RequireHeader: true}))
	require.NoError(t, err)
	require.Empty(t, items)

	// A missing column leaves the field zero, unless RequireColumns.
	partial := "\xEF\xBB\xBF\"id\",name\n1,Ann\n"
	items, _, err = enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](strings.NewReader(partial), nil, csvrows.Config{}))
	require.NoError(t, err)
	require.Equal(t, []csvRow{{ID: 1, Name: "Ann"}}, items)
	var got []csvRow
	err = csvrows.FromReader[csvRow](strings.NewReader(partial), nil, csvrows.Config{RequireColumns: true}).Enumerate(t.Context(), func(r csvRow, _ csvrows.Cursor) bool {
		got = append(got, r)
		return true
	})
	require.ErrorIs(t, err, csvrows.ErrHeader)
	require.ErrorContains(t, err, `["note" "amount"]`)
	require.Empty(t, got, "the header is checked before any row")

	// Extra columns, any order and spaces around names are fine (gocsv
	// matches trimmed names); the BOM is not part of a name.
	full := "\xEF\xBB\xBFamount, extra, note,name ,id\n1.5,z,n,Ann,1\n"
	items, _, err = enumerators.Collect(t.Context(), csvrows.FromReader[csvRow](strings.NewReader(full), nil, csvrows.Config{RequireColumns: true}))
	require.NoError(t, err)
	require.Equal(t, []csvRow{{1, "Ann", "n", 1.5}}, items)
}

func TestDecodesIntoPointersAndRejectsNonStructs(t *testing.T) {
	t.Parallel()
	data, _ := sampleData(true)
	items, _, err := enumerators.Collect(t.Context(), csvrows.FromReader[*csvRow](bytes.NewReader(data), nil, csvrows.Config{}))
	require.NoError(t, err)
	require.Len(t, items, len(csvSampleRows))
	for i, it := range items {
		require.Equal(t, csvSampleRows[i], *it)
	}

	_, _, err = enumerators.Collect(t.Context(), csvrows.FromReader[int](bytes.NewReader(data), nil, csvrows.Config{}))
	require.ErrorContains(t, err, "csvrows: ")
	require.False(t, errors.Is(err, csvrows.ErrRow), "not a row error: %v", err)
}

func TestLongRecordsAcrossBufferBoundaries(t *testing.T) {
	t.Parallel()
	// Rows longer than the read buffer, with line breaks inside, resumed
	// from every row: the offsets stay exact when records straddle buffer
	// refills.
	var b strings.Builder
	b.WriteString("id,name,amount,note\n")
	var want []csvRow
	for i := range 40 {
		note := strings.Repeat("é,\"x\"\n", 300+i*37)
		row := csvRow{ID: i, Name: strings.Repeat("n", i*200), Note: note, Amount: float64(i)}
		want = append(want, row)
		b.WriteString(strconv.Itoa(i) + "," + row.Name + "," + strconv.Itoa(i) + ",\"" + strings.ReplaceAll(note, `"`, `""`) + "\"\r\n")
	}
	data := []byte(b.String())
	for _, src := range csvSources {
		t.Run(src.name, func(t *testing.T) {
			build, _ := src.build(t, data)
			enumtest.Run(t, enumtest.Case[csvRow, csvrows.Cursor]{
				Build: func(_ context.Context, c *csvrows.Cursor) (enumerators.Enumerator[csvRow, csvrows.Cursor], error) {
					return build(c), nil
				},
				Want:   want,
				Stride: 3,
			})
		})
	}
}
