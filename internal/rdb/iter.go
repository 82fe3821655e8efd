package rdb

import (
	"context"
	"fmt"
	"time"
)

// This file is the iteration state's Redis access: the cursor store is its
// only caller.

// IterBegin claims jid's iteration state for run. ok is false when the state
// belongs to run cur >= run already.
func (db *DB) IterBegin(ctx context.Context, jid string, run int64, now time.Time, ttl time.Duration) (fields map[string]string, ok bool, cur int64, err error) {
	res, err := iterBeginScript.Run(ctx, db.C, []string{db.Keys.Iter(jid)}, run, Ms(now), ttl.Milliseconds()).Slice()
	if err != nil {
		return nil, false, 0, err
	}
	if len(res) == 0 {
		return nil, false, 0, fmt.Errorf("rdb: iter begin returned nothing")
	}
	if toInt(res[0]) == 0 {
		if len(res) > 1 {
			cur = toInt(res[1])
		}
		return nil, false, cur, nil
	}
	fields = make(map[string]string, (len(res)-1)/2)
	for i := 1; i+1 < len(res); i += 2 {
		fields[toString(res[i])] = toString(res[i+1])
	}
	return fields, true, 0, nil
}

// IterSave writes fields (name, value pairs) of jid's state if run owns it.
func (db *DB) IterSave(ctx context.Context, jid string, run int64, ttl time.Duration, fields []string) (bool, error) {
	args := make([]any, 0, 2+len(fields))
	args = append(args, run, ttl.Milliseconds())
	for _, f := range fields {
		args = append(args, f)
	}
	n, err := iterSaveScript.Run(ctx, db.C, []string{db.Keys.Iter(jid)}, args...).Int()
	return n == 1, err
}

// IterRestore writes jid's whole state for run if jid has none (see
// iterRestoreScript). restored is true when it wrote it; ok is false when
// another run owns the state.
func (db *DB) IterRestore(ctx context.Context, jid string, run int64, ttl time.Duration, executions int, firstStarted time.Time, fields []string) (restored, ok bool, err error) {
	args := make([]any, 0, 4+len(fields))
	fs := int64(0)
	if !firstStarted.IsZero() {
		fs = Ms(firstStarted)
	}
	args = append(args, run, ttl.Milliseconds(), executions, fs)
	for _, f := range fields {
		args = append(args, f)
	}
	n, err := iterRestoreScript.Run(ctx, db.C, []string{db.Keys.Iter(jid)}, args...).Int()
	return n == 2, n > 0, err
}

// IterLoad returns jid's state fields (empty: none).
func (db *DB) IterLoad(ctx context.Context, jid string) (map[string]string, error) {
	return db.C.HGetAll(ctx, db.Keys.Iter(jid)).Result()
}

// IterDelete forgets the states of jids.
func (db *DB) IterDelete(ctx context.Context, jids ...string) error {
	if len(jids) == 0 {
		return nil
	}
	if !db.cluster {
		keys := make([]string, len(jids))
		for i, jid := range jids {
			keys[i] = db.Keys.Iter(jid)
		}
		return db.C.Del(ctx, keys...).Err()
	}
	pipe := db.C.Pipeline()
	for _, jid := range jids {
		pipe.Del(ctx, db.Keys.Iter(jid))
	}
	_, err := pipe.Exec(ctx)
	return err
}
