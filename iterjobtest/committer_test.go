package iterjobtest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/cursor"
	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/iterjobtest"
)

// memCommitter is an iterable.Committer in memory: what a database would
// commit, with the same fencing by run number.
type memCommitter struct {
	mu       sync.Mutex
	run      map[string]int64
	cursor   map[string]json.RawMessage
	items    map[string]int64
	done     []int64 // items committed, in order
	claimErr error
	staleAt  int64 // an item whose commit finds a newer run (-1: none)
	eachRuns int   // EachIteration calls (must stay 0)
}

func newMemCommitter() *memCommitter {
	return &memCommitter{run: map[string]int64{}, cursor: map[string]json.RawMessage{}, items: map[string]int64{}, staleAt: -1}
}

func (m *memCommitter) BuildEnumerator(_ context.Context, n int64, c *int64) (enumerators.Enumerator[int64, int64], error) {
	return enumerators.Range(0, n, c), nil
}

func (m *memCommitter) EachIteration(context.Context, int64, int64) error {
	m.eachRuns++
	return errors.New("EachIteration called")
}

func (m *memCommitter) ClaimCommitted(_ context.Context, jobID string, run int64, _ int64) (iterable.Committed, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.claimErr != nil {
		return iterable.Committed{}, m.claimErr
	}
	if run <= m.run[jobID] {
		return iterable.Committed{}, cursor.ErrStaleRun
	}
	m.run[jobID] = run
	return iterable.Committed{Cursor: m.cursor[jobID], Items: m.items[jobID]}, nil
}

func (m *memCommitter) CommitItem(_ context.Context, jobID string, run int64, _ int64, item int64, c json.RawMessage) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if item == m.staleAt {
		m.run[jobID] = run + 100 // a newer run claimed the job meanwhile
	}
	if m.run[jobID] != run {
		return fmt.Errorf("commit: %w", cursor.ErrStaleRun)
	}
	m.cursor[jobID], m.items[jobID] = c, m.items[jobID]+1
	m.done = append(m.done, item)
	return nil
}

// The executor runs a Committer's items through CommitItem with the
// encoded cursor after each, resumes from the committed cursor although the
// store's mirror is behind (a crash), and ends a run whose commit finds a
// newer run as lost.
func TestCommitterDrivesTheRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newMemCommitter()
	first, err := iterjobtest.IterateWith(ctx, m, 10, nil, iterjobtest.Options{CrashAfter: 4})
	require.NoError(t, err)
	require.Equal(t, iterjobtest.Crashed, first.Stop)
	require.Nil(t, first.Cursor, "the mirror never saw a checkpoint")
	jid := first.Info.JobID
	require.JSONEq(t, `4`, string(m.cursor[jid]), "the cursor after item 3 is 4")

	m.staleAt = 7
	second, err := iterjobtest.Iterate(ctx, m, 10, first, 0)
	require.NoError(t, err)
	require.Equal(t, "lost", second.Action)
	require.Equal(t, int64(4), second.Info.ItemsProcessed, "the run began from the committed count")
	require.Equal(t, int64(3), second.Items, "items 4-6 committed, item 7 was fenced out")

	// The newer run (simulated by the next call, whose run number is
	// higher still) resumes at item 7.
	m.staleAt = -1
	m.run[jid] = 0
	third, err := iterjobtest.Iterate(ctx, m, 10, second, 0)
	require.NoError(t, err)
	require.Equal(t, iterable.Completed, third.Stop)
	require.Equal(t, []int64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, m.done, "every item committed once, in order")
	require.Equal(t, int64(10), third.Total, "the mirror counts each item once")
	require.JSONEq(t, `10`, string(third.Cursor))
	require.Zero(t, m.eachRuns)
}

// A claim that fails fails the run (a retry follows); one refused as stale
// ends it as lost; neither iterates.
func TestCommitterClaimErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	m := newMemCommitter()
	down := errors.New("database down")
	m.claimErr = down
	run, err := iterjobtest.Iterate(ctx, m, 5, nil, 0)
	require.ErrorIs(t, err, down)
	require.Equal(t, "retry", run.Action)
	require.Empty(t, m.done)

	m.claimErr = cursor.ErrStaleRun
	run, err = iterjobtest.Iterate(ctx, m, 5, run, 0)
	require.NoError(t, err)
	require.Equal(t, "lost", run.Action)
	require.Empty(t, m.done)
}
