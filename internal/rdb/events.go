package rdb

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// EventBatch is one entry of the events stream: the events one call
// emitted, as a JSON array.
type EventBatch struct {
	ID     string // the stream entry's id
	Events string // a JSON array of events
}

// LastEventID returns the id of the stream's newest entry, or "0-0".
func (db *DB) LastEventID(ctx context.Context) (string, error) {
	msgs, err := db.C.XRevRangeN(ctx, db.Keys.Events(), "+", "-", 1).Result()
	if err != nil {
		return "", err
	}
	if len(msgs) == 0 {
		return "0-0", nil
	}
	return msgs[0].ID, nil
}

// EventAt returns the batch with stream id id (false: trimmed away).
func (db *DB) EventAt(ctx context.Context, id string) (EventBatch, bool, error) {
	msgs, err := db.C.XRange(ctx, db.Keys.Events(), id, id).Result()
	if err != nil || len(msgs) == 0 {
		return EventBatch{}, false, err
	}
	return batchOf(msgs[0]), true, nil
}

// FirstEventID returns the id of the stream's oldest entry, or "".
func (db *DB) FirstEventID(ctx context.Context) (string, error) {
	msgs, err := db.C.XRangeN(ctx, db.Keys.Events(), "-", "+", 1).Result()
	if err != nil || len(msgs) == 0 {
		return "", err
	}
	return msgs[0].ID, nil
}

// ReadEvents returns up to count batches after stream id after, waiting up to
// block for one to come (0: do not wait).
func (db *DB) ReadEvents(ctx context.Context, after string, count int64, block time.Duration) ([]EventBatch, error) {
	if block <= 0 {
		msgs, err := db.C.XRangeN(ctx, db.Keys.Events(), "("+after, "+", count).Result()
		if err != nil {
			return nil, err
		}
		out := make([]EventBatch, len(msgs))
		for i, m := range msgs {
			out[i] = batchOf(m)
		}
		return out, nil
	}
	streams, err := db.C.XRead(ctx, &redis.XReadArgs{Streams: []string{db.Keys.Events(), after}, Count: count, Block: block}).Result()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []EventBatch
	for _, s := range streams {
		for _, m := range s.Messages {
			out = append(out, batchOf(m))
		}
	}
	return out, nil
}

// batchOf reads a stream entry: its fields e, e2, e3, ... hold event
// objects joined by commas (entries written before hold one JSON array in
// e), returned as one JSON array.
func batchOf(m redis.XMessage) EventBatch {
	b := EventBatch{ID: m.ID}
	first, _ := m.Values["e"].(string)
	if strings.HasPrefix(first, "[") {
		b.Events = first
		return b
	}
	var sb strings.Builder
	sb.WriteByte('[')
	sb.WriteString(first)
	for i := 2; ; i++ {
		piece, ok := m.Values["e"+strconv.Itoa(i)].(string)
		if !ok {
			break
		}
		sb.WriteByte(',')
		sb.WriteString(piece)
	}
	sb.WriteByte(']')
	b.Events = sb.String()
	return b
}
