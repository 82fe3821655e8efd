package csvrows

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/gocarina/gocsv"

	"github.com/iterjob/iterjob/enumerators"
)

// Cursor is where an enumeration resumes: just after the row it was
// taken from.
type Cursor struct {
	// Offset is the byte offset, from the very start of the data (a UTF-8
	// byte order mark included), of the byte just after the row: the start
	// of the next row.
	Offset int64 `json:"offset"`
	// Line is the physical line (1-based, counting every '\n' of the data,
	// including those inside quoted fields, and the lines of the header,
	// blank lines and comments) on which the row ends. A row whose quoted
	// fields hold line breaks spans several lines; Line is the last of
	// them. The next row starts on a line after Line, so line numbers in
	// errors stay those of the file after a resume.
	Line int64 `json:"line"`
}

// Defaults applied to a zero Config field.
const (
	// CommaDefault is the field delimiter when Config.Comma is zero.
	CommaDefault = ','
	// BufferSizeDefault is the read buffer size when
	// Config.BufferSize is zero.
	BufferSizeDefault = 64 << 10
	// BufferSizeMin is the smallest read buffer; smaller sizes are
	// raised to it.
	BufferSizeMin = 4096
)

// Config configures FromReader and FromFile. The zero value reads standard
// comma-separated data (RFC 4180, as encoding/csv reads it) with a header.
type Config struct {
	// Comma is the field delimiter. Zero means CommaDefault (',').
	// It must be a valid rune other than '"', '\r', '\n' and
	// utf8.RuneError.
	Comma rune

	// Comment, if not zero, starts a comment line: a line that begins with
	// it is skipped (it still counts in line numbers). Zero means no
	// comments. It must differ from Comma.
	Comment rune

	// LazyQuotes lets a quote appear in an unquoted field and a lone quote
	// appear in a quoted field, as encoding/csv's Reader.LazyQuotes.
	// False (the default) makes those rows malformed.
	LazyQuotes bool

	// TrimLeadingSpace ignores white space at the start of each field, as
	// encoding/csv's Reader.TrimLeadingSpace. False (the default) keeps it.
	TrimLeadingSpace bool

	// RequireHeader makes data with no header line (empty, or only blank
	// and comment lines) an error matching ErrHeader. False (the
	// default) enumerates such data as zero rows.
	RequireHeader bool

	// RequireColumns makes Enumerate fail with an error matching
	// ErrHeader, before any row, when the header lacks a column for a
	// field that gocsv maps (each field's first `csv` tag key, or its Go
	// name when untagged). False (the default) leaves such fields at their
	// zero value, as gocsv does.
	RequireColumns bool

	// BufferSize is the size of the read buffer in bytes. Zero means
	// BufferSizeDefault; values below BufferSizeMin are raised to it.
	BufferSize int

	// Open opens the file named by FromFile's path; FromReader ignores it. Nil
	// means os.Open. Set it to read from another file system (an fs.FS's
	// Open method fits) or to watch files being opened. A file that
	// implements io.Seeker is resumed by seeking; its Stat gives the size
	// reported by Progress.
	Open func(name string) (fs.File, error)
}

func (c Config) withDefaults() Config {
	if c.Comma == 0 {
		c.Comma = CommaDefault
	}
	if c.BufferSize == 0 {
		c.BufferSize = BufferSizeDefault
	}
	c.BufferSize = max(c.BufferSize, BufferSizeMin)
	if c.Open == nil {
		c.Open = func(name string) (fs.File, error) { return os.Open(name) }
	}
	return c
}

func (c Config) validate() error {
	valid := func(r rune) bool {
		return r != 0 && r != '"' && r != '\r' && r != '\n' && utf8.ValidRune(r) && r != utf8.RuneError
	}
	if !valid(c.Comma) {
		return fmt.Errorf("%w: Comma %q cannot delimit fields", ErrConfig, c.Comma)
	}
	if c.Comment != 0 && (!valid(c.Comment) || c.Comment == c.Comma) {
		return fmt.Errorf("%w: Comment %q cannot start comments", ErrConfig, c.Comment)
	}
	return nil
}

var (
	// ErrConfig is matched by the error Enumerate returns when the Config
	// cannot work: a Comma or Comment that cannot delimit fields or start
	// comments.
	ErrConfig = errors.New("csvrows: invalid config")

	// ErrRow is matched (with errors.Is) by a *RowError.
	ErrRow = errors.New("csvrows: malformed row")

	// ErrHeader is matched by the error Enumerate returns when the
	// header is missing (Config.RequireHeader) or lacks a column
	// (Config.RequireColumns).
	ErrHeader = errors.New("csvrows: header")

	// ErrReaderReused is returned by a second Enumerate of an enumerator
	// built by FromReader on a plain io.Reader (not an io.Seeker): the first
	// enumeration consumed the stream, so it cannot be read again.
	ErrReaderReused = errors.New("csvrows: a plain io.Reader can be enumerated only once")
)

// RowError reports a malformed row: bad quoting, a field count that
// differs from the header's, or a value that does not decode into its struct
// field. The rows before it were yielded, so a runner that checkpoints the
// last good cursor resumes at the malformed row.
type RowError struct {
	// Line is the physical line of the data (1-based, counted from the
	// start of the data even when the enumeration resumed from a cursor)
	// where the problem is: the line of the bad quote, the first line of a
	// row with the wrong field count, or the line where the field that
	// failed to decode starts.
	Line int64
	// Column is the header name of the field that failed to decode, or ""
	// when the row itself is malformed.
	Column string
	// Err is the cause: one of encoding/csv's ErrQuote, ErrBareQuote or
	// ErrFieldCount (wrapped), or the decoding error from gocsv.
	Err error
}

func (e *RowError) Error() string {
	if e.Column != "" {
		return fmt.Sprintf("csvrows: line %d: column %q: %v", e.Line, e.Column, e.Err)
	}
	return fmt.Sprintf("csvrows: line %d: %v", e.Line, e.Err)
}

// Unwrap returns the cause.
func (e *RowError) Unwrap() error { return e.Err }

// Is reports whether target is ErrRow or another *RowError.
func (e *RowError) Is(target error) bool {
	if target == ErrRow {
		return true
	}
	_, ok := target.(*RowError)
	return ok
}

// FromReader enumerates the rows of CSV data read from r, each decoded by
// gocsv into a T (a struct, or a pointer to one, whose fields name their
// columns with `csv:"..."` tags). The first line is the header; it is read on every
// Enumerate, once, before the rows. A UTF-8 byte order mark at the start is
// skipped. Rows are yielded with the Cursor just after them; a nil cursor
// starts at the first row.
//
// When r is an io.ReadSeeker, its data is the whole of it from offset 0:
// Enumerate seeks to 0 to read the header, then, resuming, seeks straight to
// the cursor's offset, so resuming near the end costs about as much as
// starting. A plain io.Reader is read from where it stands, once (a second
// Enumerate returns ErrReaderReused); resuming it discards the bytes up to
// the cursor's offset, without parsing them: that costs a read of those bytes.
//
// A cursor before the first row, beyond the end of the data, or whose offset
// does not follow a line break (or the end of the data) is an error matching
// enumerators.ErrInvalidCursor. The check reads one byte; an offset inside a
// quoted field just after one of its line breaks is not detected.
//
// A malformed row ends the enumeration with a *RowError naming its line.
// Decoding uses gocsv with our own encoding/csv reader, configured by cfg;
// gocsv's process-wide settings are never changed (those that gocsv reads,
// such as its header normalizer, apply as set by the application).
//
// FromReader never closes r. Enumerate calls on one enumerator must not
// overlap, as they share r. The enumerator reports progress in bytes (see
// enumerators.ProgressReporter).
func FromReader[T any](r io.Reader, cursor *Cursor, cfg Config) enumerators.Enumerator[T, Cursor] {
	e, err := newEnum[T](cursor, cfg)
	if err != nil {
		return failing[T](err)
	}
	e.src = r
	if canSeek(r) {
		e.size.Store(sizeOf(r))
	}
	return e
}

// FromFile enumerates the rows of the CSV file at path as FromReader does.
// Each Enumerate opens the file (with cfg.Open, os.Open by default), resumes
// by seeking to the cursor's offset, and closes the file when it returns:
// after the last row, an early stop, or an error. Progress reports the file
// size as the total.
func FromFile[T any](path string, cursor *Cursor, cfg Config) enumerators.Enumerator[T, Cursor] {
	e, err := newEnum[T](cursor, cfg)
	if err != nil {
		return failing[T](err)
	}
	e.path = path
	e.isFile = true
	return e
}

func newEnum[T any](cursor *Cursor, cfg Config) (*rowsEnum[T], error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	e := &rowsEnum[T]{cfg: cfg}
	e.size.Store(-1)
	if cursor != nil {
		c := *cursor
		if c.Offset < 0 || c.Line < 1 || c.Line-1 > c.Offset {
			return nil, fmt.Errorf("csvrows: cursor %+v is not a position in any CSV data: %w", c, enumerators.ErrInvalidCursor)
		}
		e.start = &c
	}
	return e, nil
}

type rowsEnum[T any] struct {
	cfg    Config
	start  *Cursor
	src    io.Reader // FromReader
	path   string    // FromFile
	isFile bool
	used   atomic.Bool  // a plain reader was consumed
	size   atomic.Int64 // total bytes, -1 while unknown
}

// canSeek reports whether r can be resumed by seeking: it is an io.Seeker
// and, if it can tell, a regular file (os.Stdin is an *os.File, yet a pipe
// cannot seek).
func canSeek(r any) bool {
	if _, ok := r.(io.Seeker); !ok {
		return false
	}
	if s, ok := r.(interface{ Stat() (fs.FileInfo, error) }); ok {
		fi, err := s.Stat()
		return err == nil && fi.Mode().IsRegular()
	}
	return true
}

// sizeOf returns the size of r without reading or moving it, or -1.
func sizeOf(r any) int64 {
	switch s := r.(type) {
	case interface{ Size() int64 }: // bytes.Reader, strings.Reader, io.SectionReader
		return s.Size()
	case interface{ Stat() (fs.FileInfo, error) }: // os.File, fs.File
		if fi, err := s.Stat(); err == nil && fi.Mode().IsRegular() {
			return fi.Size()
		}
	}
	return -1
}

// Progress counts bytes: Done is the cursor's offset (the starting cursor's
// before the first row), Total the size of the data, or -1 when unknown (a
// plain io.Reader; an io.ReadSeeker without a Size or Stat method until
// Enumerate has run). It never reads the data.
func (e *rowsEnum[T]) Progress(_ context.Context, cursor *Cursor) (enumerators.Progress, error) {
	var done int64
	switch {
	case cursor != nil:
		done = cursor.Offset
	case e.start != nil:
		done = e.start.Offset
	}
	total := e.size.Load()
	if total < 0 && e.isFile {
		f, err := e.cfg.Open(e.path)
		if err != nil {
			return enumerators.Progress{}, fmt.Errorf("csvrows: progress: %w", err)
		}
		total = sizeOf(f)
		_ = f.Close()
		e.size.Store(total)
	}
	return enumerators.Progress{Done: done, Total: total, Unit: "bytes"}, nil
}

// Enumerate reads the header, moves to the cursor, and yields the rows.
func (e *rowsEnum[T]) Enumerate(ctx context.Context, yield func(T, Cursor) bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	src := e.src
	if e.isFile {
		f, err := e.cfg.Open(e.path)
		if err != nil {
			return fmt.Errorf("csvrows: %w", err)
		}
		defer f.Close()
		if size := sizeOf(f); size >= 0 {
			e.size.Store(size)
		}
		src = f
	}
	var seeker io.Seeker
	if canSeek(src) {
		seeker = src.(io.Seeker)
	}
	if seeker == nil && e.used.Swap(true) {
		return ErrReaderReused
	}
	if seeker != nil {
		if e.size.Load() < 0 {
			end, err := seeker.Seek(0, io.SeekEnd)
			if err != nil {
				return fmt.Errorf("csvrows: seek to end: %w", err)
			}
			e.size.Store(end)
		}
		if _, err := seeker.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("csvrows: seek to start: %w", err)
		}
	}
	return e.enumerate(ctx, src, seeker, yield)
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

func (e *rowsEnum[T]) newReader(br *bufio.Reader) *csv.Reader {
	// csv.NewReader keeps br itself as its buffer (br is a *bufio.Reader of
	// at least 4096 bytes), so after a Read, br stands exactly at the end of
	// the record: resuming a plain reader relies on that.
	r := csv.NewReader(br)
	r.Comma = e.cfg.Comma
	r.Comment = e.cfg.Comment
	r.LazyQuotes = e.cfg.LazyQuotes
	r.TrimLeadingSpace = e.cfg.TrimLeadingSpace
	r.ReuseRecord = true
	return r
}

func (e *rowsEnum[T]) enumerate(ctx context.Context, src io.Reader, seeker io.Seeker, yield func(T, Cursor) bool) error {
	br := bufio.NewReaderSize(src, e.cfg.BufferSize)
	var bom int64
	if b, _ := br.Peek(len(utf8BOM)); bytes.Equal(b, utf8BOM) {
		_, _ = br.Discard(len(utf8BOM))
		bom = int64(len(utf8BOM))
	}

	hr := e.newReader(br)
	header, err := hr.Read()
	switch {
	case err == io.EOF:
		if e.start != nil {
			return fmt.Errorf("csvrows: cursor %+v, but the data has no header: %w", *e.start, enumerators.ErrInvalidCursor)
		}
		if e.cfg.RequireHeader {
			return fmt.Errorf("%w: no header line", ErrHeader)
		}
		return nil
	case err != nil:
		return readError(err, 0, 0, 0)
	}
	header = slices.Clone(header)
	headerEnd := bom + hr.InputOffset()
	headerLine := int64(recordEndLine(hr, header))
	if e.cfg.RequireColumns {
		if err := checkColumns[T](header); err != nil {
			return err
		}
	}

	rows := &csvRows[T]{
		r:      hr,
		header: header,
		offset: bom,
		yield:  yield,
		done:   ctx.Done(),
		ctx:    ctx,
		items:  make(chan T, 1),
	}
	if c := e.start; c != nil {
		if err := e.seekCursor(br, src, seeker, headerEnd, headerLine); err != nil {
			return err
		}
		rows.r = e.newReader(br)
		rows.r.FieldsPerRecord = len(header)
		rows.offset, rows.line = c.Offset, c.Line
	}

	// gocsv decodes each row we hand it and sends the value on rows.items;
	// rows.GetCSVRow yields that value before reading the next row, all on
	// this goroutine. The header is handed over first, once.
	rows.pendingHeader = true
	err = gocsv.UnmarshalDecoderToChan(rows, rows.items)
	if rows.err != nil {
		return rows.err
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) && rows.pending && pe.Column >= 1 && pe.Column <= len(header) {
			// A value of the row just handed over does not decode.
			line, _ := rows.r.FieldPos(pe.Column - 1)
			return &RowError{Line: rows.line + int64(line), Column: header[pe.Column-1], Err: pe.Err}
		}
		return fmt.Errorf("csvrows: %w", err)
	}
	return nil
}

// seekCursor moves br to e.start.Offset, checking on the way that the
// offset is a row boundary past the header and within the data.
func (e *rowsEnum[T]) seekCursor(br *bufio.Reader, src io.Reader, seeker io.Seeker, headerEnd, headerLine int64) error {
	c := *e.start
	bad := func(why string) error {
		return fmt.Errorf("csvrows: cursor %+v %s: %w", c, why, enumerators.ErrInvalidCursor)
	}
	if c.Offset < headerEnd || c.Line < headerLine {
		return bad("is inside the header")
	}
	if c.Offset == headerEnd {
		if c.Line != headerLine {
			return bad(fmt.Sprintf("is at the end of the header, which ends on line %d", headerLine))
		}
		return nil
	}
	if c.Line == headerLine || c.Line-headerLine > c.Offset-headerEnd {
		return bad("has a line number that does not fit its offset")
	}
	// Move to the byte before the offset: it must end a line, unless the
	// offset is the end of the data.
	if seeker != nil {
		if _, err := seeker.Seek(c.Offset-1, io.SeekStart); err != nil {
			return fmt.Errorf("csvrows: seek to cursor: %w", err)
		}
		br.Reset(src)
	} else if _, err := br.Discard(int(c.Offset - 1 - headerEnd)); err != nil {
		if err == io.EOF {
			return bad("is beyond the end of the data")
		}
		return fmt.Errorf("csvrows: skip to cursor: %w", err)
	}
	b, err := br.ReadByte()
	if err == io.EOF {
		return bad("is beyond the end of the data")
	}
	if err != nil {
		return fmt.Errorf("csvrows: read at cursor: %w", err)
	}
	if b == '\n' {
		return nil
	}
	if _, err := br.Peek(1); err == io.EOF {
		return nil // the last row ends the data without a line break
	} else if err != nil {
		return fmt.Errorf("csvrows: read at cursor: %w", err)
	}
	return bad("is not at the start of a row")
}

// recordEndLine returns the reader-relative line on which the record most
// recently read by r ends: the line where its last field starts plus the
// line breaks inside that field.
func recordEndLine(r *csv.Reader, record []string) int {
	last := len(record) - 1
	line, _ := r.FieldPos(last)
	return line + strings.Count(record[last], "\n")
}

// readError turns an error of csv.Reader.Read into ours. lineBase is the
// number of lines before the reader's start; got and want are the field
// counts of the row and of the header.
func readError(err error, lineBase int64, got, want int) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		cause := pe.Err
		if errors.Is(cause, csv.ErrFieldCount) {
			cause = fmt.Errorf("%w: %d fields, the header has %d", csv.ErrFieldCount, got, want)
		}
		return &RowError{Line: lineBase + int64(pe.Line), Err: cause}
	}
	return fmt.Errorf("csvrows: read: %w", err)
}

// checkColumns reports the fields of T that gocsv maps but header lacks.
func checkColumns[T any](header []string) error {
	var names columnNames
	if err := gocsv.MarshalCSV([]T{}, &names); err != nil {
		return fmt.Errorf("csvrows: columns of %T: %w", *new(T), err)
	}
	have := make(map[string]bool, len(header))
	for _, h := range header {
		have[h] = true
		have[strings.TrimSpace(h)] = true
	}
	var missing []string
	for _, n := range names.row {
		if !have[n] {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: no column for %q", ErrHeader, missing)
	}
	return nil
}

// columnNames is a gocsv.CSVWriter that keeps the header row gocsv writes
// for a type, without any CSV encoding.
type columnNames struct{ row []string }

func (c *columnNames) Write(row []string) error {
	if c.row == nil {
		c.row = slices.Clone(row)
	}
	return nil
}
func (c *columnNames) Flush()       {}
func (c *columnNames) Error() error { return nil }

// csvRows is the gocsv.SimpleDecoder gocsv reads rows from. It owns the
// encoding/csv reader, computes each row's cursor, and calls yield with each
// value gocsv decoded, in step with gocsv's loop.
type csvRows[T any] struct {
	r      *csv.Reader
	header []string
	offset int64 // bytes before the reader's start
	line   int64 // lines before the reader's start

	yield func(T, Cursor) bool
	ctx   context.Context
	done  <-chan struct{}
	items chan T

	pendingHeader bool
	pending       bool   // a row was handed to gocsv and not yet yielded
	cursor        Cursor // the cursor after the pending row
	err           error  // ends the enumeration with this error
}

// GetCSVRow hands gocsv the header first, then the next row, after
// yielding the value gocsv decoded from the previous one. io.EOF tells gocsv
// to stop: at the end of the data, on an early stop or on an error kept in
// c.err.
func (c *csvRows[T]) GetCSVRow() ([]string, error) {
	if c.pendingHeader {
		c.pendingHeader = false
		return c.header, nil
	}
	if c.pending {
		c.pending = false
		var item T
		select {
		case item = <-c.items:
		default:
			c.err = errors.New("csvrows: gocsv did not decode the previous row")
			return nil, io.EOF
		}
		if !c.yield(item, c.cursor) {
			return nil, io.EOF
		}
	}
	if c.done != nil {
		select {
		case <-c.done:
			c.err = c.ctx.Err()
			return nil, io.EOF
		default:
		}
	}
	record, err := c.r.Read()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		c.err = readError(err, c.line, len(record), len(c.header))
		return nil, io.EOF
	}
	c.cursor = Cursor{
		Offset: c.offset + c.r.InputOffset(),
		Line:   c.line + int64(recordEndLine(c.r, record)),
	}
	c.pending = true
	return record, nil
}

// GetCSVRows is part of gocsv.SimpleDecoder; gocsv's streaming decoder does
// not call it.
func (c *csvRows[T]) GetCSVRows() ([][]string, error) {
	return nil, errors.New("csvrows: rows are read one at a time")
}

// failing returns an enumerator that fails at once with err.
func failing[T any](err error) enumerators.Enumerator[T, Cursor] {
	return enumerators.EnumeratorFunc[T, Cursor](func(context.Context, func(T, Cursor) bool) error { return err })
}
