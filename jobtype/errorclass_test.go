package jobtype_test

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/jobtype"
)

// rowErr is a typed error that wraps a cause, like csvrows.RowError.
type rowErr struct{ err error }

func (e *rowErr) Error() string { return "row 5: " + e.err.Error() }
func (e *rowErr) Unwrap() error { return e.err }

// flag is a pure wrapper known to the caller, like iterable.SkipRetryError.
type flag struct{ err error }

func (e *flag) Error() string { return "flag: " + e.err.Error() }
func (e *flag) Unwrap() error { return e.err }

func TestErrorClassIsTheMostSpecificTypedErrorInTheChain(t *testing.T) {
	t.Parallel()
	row := &rowErr{err: &strconv.NumError{Func: "ParseInt", Num: "x", Err: strconv.ErrSyntax}}
	isFlag := func(err error) bool { _, ok := err.(*flag); return ok }
	for name, tc := range map[string]struct {
		err     error
		wrapper func(error) bool
		want    string
	}{
		"nil":                    {nil, nil, "<nil>"},
		"errors.New":             {errors.New("x"), nil, "*errors.errorString"},
		"fmt.Errorf without %w":  {fmt.Errorf("x %d", 1), nil, "*errors.errorString"},
		"typed":                  {row, nil, "*jobtype_test.rowErr"},
		"fmt wrap":               {fmt.Errorf("enumerator: %w", row), nil, "*jobtype_test.rowErr"},
		"fmt wrap of fmt wrap":   {fmt.Errorf("a: %w", fmt.Errorf("b: %w", row)), nil, "*jobtype_test.rowErr"},
		"fmt wrap of plain":      {fmt.Errorf("a: %w", errors.New("x")), nil, "*errors.errorString"},
		"several %w":             {fmt.Errorf("%w and %w", fmt.Errorf("a: %w", row), fs.ErrNotExist), nil, "*jobtype_test.rowErr"},
		"join":                   {errors.Join(fmt.Errorf("a: %w", row), fs.ErrClosed), nil, "*jobtype_test.rowErr"},
		"join, wrappers first":   {errors.Join(fmt.Errorf("a: %w", fmt.Errorf("%w", nil)), row), nil, "*jobtype_test.rowErr"},
		"unknown wrapper stays":  {&flag{err: row}, nil, "*jobtype_test.flag"},
		"known wrapper skipped":  {&flag{err: row}, isFlag, "*jobtype_test.rowErr"},
		"interleaved wrappers":   {fmt.Errorf("mw: %w", &flag{err: fmt.Errorf("enumerator: %w", row)}), isFlag, "*jobtype_test.rowErr"},
		"wrapper of nothing":     {&flag{}, isFlag, "*jobtype_test.flag"},
		"fmt wrap of nothing":    {fmt.Errorf("x: %w", nil), nil, "*fmt.wrapError"},
		"wrapper of plain error": {&flag{err: errors.New("x")}, isFlag, "*errors.errorString"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, jobtype.ErrorClass(tc.err, tc.wrapper))
		})
	}
	jerr := jobtype.NewJobError(fmt.Errorf("enumerator: %w", row), nil, 1, time.Now())
	require.Equal(t, "*jobtype_test.rowErr", jerr.Class)
	require.Equal(t, `enumerator: row 5: strconv.ParseInt: parsing "x": invalid syntax`, jerr.Message)
}
