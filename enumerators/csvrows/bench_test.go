package csvrows_test

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/gocarina/gocsv"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/enumerators/csvrows"
)

const (
	benchCSVRows     = 1_000_000
	benchCSVResumeAt = 900_000 // resume after this many rows
	benchCSVVersion  = 1       // bump when the generated file changes
)

type benchCSVRow struct {
	ID     int64   `csv:"id"`
	Name   string  `csv:"name"`
	Email  string  `csv:"email"`
	Amount float64 `csv:"amount"`
	Note   string  `csv:"note"`
}

var benchCSV struct {
	once   sync.Once
	path   string
	cursor csvrows.Cursor // after row benchCSVResumeAt
	err    error
}

// benchCSVFile returns a 1,000,000-row CSV file and the cursor after row
// 900,000. The file is generated once and cached in the OS temp directory
// (about 90 MB), with the cursor beside it.
func benchCSVFile(b *testing.B) (string, csvrows.Cursor) {
	b.Helper()
	benchCSV.once.Do(func() {
		dir := filepath.Join(os.TempDir(), "iterjob-bench")
		path := filepath.Join(dir, fmt.Sprintf("csv-%d-rows-v%d.csv", benchCSVRows, benchCSVVersion))
		meta := path + ".cursor.json"
		benchCSV.path = path
		if raw, err := os.ReadFile(meta); err == nil {
			if _, err := os.Stat(path); err == nil && json.Unmarshal(raw, &benchCSV.cursor) == nil {
				return
			}
		}
		benchCSV.cursor, benchCSV.err = generateBenchCSV(dir, path, meta)
	})
	if benchCSV.err != nil {
		b.Fatal(benchCSV.err)
	}
	return benchCSV.path, benchCSV.cursor
}

func generateBenchCSV(dir, path, meta string) (csvrows.Cursor, error) {
	var at csvrows.Cursor
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return at, err
	}
	tmp, err := os.CreateTemp(dir, "csv-*.tmp")
	if err != nil {
		return at, err
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	var offset, line int64
	write := func(s string) {
		n, _ := w.WriteString(s)
		offset += int64(n)
		for i := 0; i < len(s); i++ {
			if s[i] == '\n' {
				line++
			}
		}
	}
	write("\xEF\xBB\xBFid,name,email,amount,note\r\n")
	names := []string{"Ann", "Bjørn", "Zoë", "Łukasz", "李雷", "O'Neil"}
	for i := int64(1); i <= benchCSVRows; i++ {
		name := names[i%int64(len(names))]
		note := "ok"
		switch i % 10 {
		case 3:
			note = `"said ""hello"", twice"`
		case 7:
			note = "\"two\r\nlines\""
		}
		write(strconv.FormatInt(i, 10) + "," + name + ",user" + strconv.FormatInt(i, 10) + "@example.com," +
			strconv.FormatInt(i%100000, 10) + "." + strconv.FormatInt(i%100, 10) + "," + note + "\r\n")
		if i == benchCSVResumeAt {
			at = csvrows.Cursor{Offset: offset, Line: line}
		}
	}
	if err := w.Flush(); err != nil {
		return at, err
	}
	if err := tmp.Close(); err != nil {
		return at, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return at, err
	}
	raw, _ := json.Marshal(at)
	return at, os.WriteFile(meta, raw, 0o644)
}

// BenchmarkCSV compares, in one run, the cost of resuming a 1,000,000-row
// file after row 900,000 (build the enumerator, read the header, seek, yield
// the first row) with a full read of the file. The design target is under 1%.
//
//	go test ./enumerators/csvrows -run '^$' -bench BenchmarkCSV -benchtime 3x
//
// Metrics: rows/s of a full read; %full (a sub-benchmark's time per op as a
// percentage of FullRead's); x_raw (FullRead's time over a bare
// encoding/csv pass, i.e. the cost of decoding with gocsv).
func BenchmarkCSV(b *testing.B) {
	path, at := benchCSVFile(b)
	var fullNs, rawNs float64

	perOp := func(b *testing.B, ops int) float64 {
		return float64(b.Elapsed().Nanoseconds()) / float64(ops)
	}
	reportShare := func(b *testing.B, ns float64) {
		if fullNs > 0 {
			b.ReportMetric(100*ns/fullNs, "%full")
		}
	}

	b.Run("RawEncodingCSV", func(b *testing.B) {
		ops := 0
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			r := csv.NewReader(bufio.NewReaderSize(f, csvrows.BufferSizeDefault))
			r.ReuseRecord = true
			n := 0
			for {
				if _, err := r.Read(); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
				n++
			}
			f.Close()
			if n != benchCSVRows+1 {
				b.Fatalf("read %d records", n)
			}
			ops++
		}
		rawNs = perOp(b, ops)
		b.ReportMetric(benchCSVRows/(rawNs/1e9), "rows/s")
	})

	b.Run("FullRead", func(b *testing.B) {
		ops := 0
		for b.Loop() {
			n := 0
			var last benchCSVRow
			err := csvrows.FromFile[benchCSVRow](path, nil, csvrows.Config{}).Enumerate(b.Context(), func(r benchCSVRow, _ csvrows.Cursor) bool {
				n++
				last = r
				return true
			})
			if err != nil || n != benchCSVRows || last.ID != benchCSVRows {
				b.Fatalf("read %d rows, last %+v: %v", n, last, err)
			}
			ops++
		}
		fullNs = perOp(b, ops)
		b.ReportMetric(benchCSVRows/(fullNs/1e9), "rows/s")
		if rawNs > 0 {
			b.ReportMetric(fullNs/rawNs, "x_raw")
		}
	})

	resume := func(b *testing.B, open func() (enumerators.Enumerator[benchCSVRow, csvrows.Cursor], func())) {
		ops := 0
		for b.Loop() {
			e, done := open()
			var first benchCSVRow
			err := e.Enumerate(b.Context(), func(r benchCSVRow, _ csvrows.Cursor) bool {
				first = r
				return false
			})
			done()
			if err != nil || first.ID != benchCSVResumeAt+1 {
				b.Fatalf("first row after the cursor: %+v: %v", first, err)
			}
			ops++
		}
		reportShare(b, perOp(b, ops))
	}

	b.Run("ResumeAt900k/File", func(b *testing.B) {
		resume(b, func() (enumerators.Enumerator[benchCSVRow, csvrows.Cursor], func()) {
			c := at
			return csvrows.FromFile[benchCSVRow](path, &c, csvrows.Config{}), func() {}
		})
	})

	// A plain io.Reader cannot seek: it discards the bytes before the
	// cursor without parsing them.
	b.Run("ResumeAt900k/PlainReader", func(b *testing.B) {
		resume(b, func() (enumerators.Enumerator[benchCSVRow, csvrows.Cursor], func()) {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			c := at
			return csvrows.FromReader[benchCSVRow](plainReader{f}, &c, csvrows.Config{}), func() { f.Close() }
		})
	})
}

// BenchmarkCSVDecodePerRow compares our way of decoding with gocsv (its
// streaming decoder fed by our reader: the header mapping is built once)
// with calling gocsv.UnmarshalCSV on each row (the mapping rebuilt per row),
// on the first 100,000 rows of the benchmark file.
func BenchmarkCSVDecodePerRow(b *testing.B) {
	path, _ := benchCSVFile(b)
	const rows = 100_000
	var streamNs float64

	b.Run("Stream", func(b *testing.B) {
		ops := 0
		for b.Loop() {
			n := 0
			err := csvrows.FromFile[benchCSVRow](path, nil, csvrows.Config{}).Enumerate(b.Context(), func(benchCSVRow, csvrows.Cursor) bool {
				n++
				return n < rows
			})
			if err != nil || n != rows {
				b.Fatal(n, err)
			}
			ops++
		}
		streamNs = float64(b.Elapsed().Nanoseconds()) / float64(ops) / rows
		b.ReportMetric(streamNs, "ns/row")
	})

	b.Run("UnmarshalEachRow", func(b *testing.B) {
		ops := 0
		for b.Loop() {
			f, err := os.Open(path)
			if err != nil {
				b.Fatal(err)
			}
			br := bufio.NewReaderSize(f, csvrows.BufferSizeDefault)
			_, _ = br.Discard(3) // BOM
			r := csv.NewReader(br)
			header, err := r.Read()
			if err != nil {
				b.Fatal(err)
			}
			header = append([]string(nil), header...)
			var out []benchCSVRow
			for range rows {
				rec, err := r.Read()
				if err != nil {
					b.Fatal(err)
				}
				if err := gocsv.UnmarshalCSV(&twoRows{rows: [][]string{header, rec}}, &out); err != nil {
					b.Fatal(err)
				}
			}
			f.Close()
			ops++
		}
		ns := float64(b.Elapsed().Nanoseconds()) / float64(ops) / rows
		b.ReportMetric(ns, "ns/row")
		if streamNs > 0 {
			b.ReportMetric(ns/streamNs, "x_stream")
		}
	})
}

// twoRows is a gocsv.CSVReader holding a header and one row.
type twoRows struct{ rows [][]string }

func (t *twoRows) Read() ([]string, error) {
	if len(t.rows) == 0 {
		return nil, io.EOF
	}
	r := t.rows[0]
	t.rows = t.rows[1:]
	return r, nil
}

func (t *twoRows) ReadAll() ([][]string, error) { return t.rows, nil }
