package queue

import (
	"fmt"
	"strconv"
	"strings"
)

// QueueWeight is one queue a runner takes jobs from, with its weight.
type QueueWeight struct {
	Name string
	// Weight is how often the queue is looked at first, relative to the
	// others (weighted mode), or its rank (strict mode: higher first).
	// Zero means 1.
	Weight int
}

// ParseQueues parses "urgent:10,default:1,low" (a missing weight is 1).
func ParseQueues(s string) ([]QueueWeight, error) {
	var out []QueueWeight
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, w, hasW := strings.Cut(part, ":")
		q := QueueWeight{Name: name, Weight: 1}
		if hasW {
			n, err := strconv.Atoi(w)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%w: weight %q of queue %q must be a positive integer", ErrInvalidName, w, name)
			}
			q.Weight = n
		}
		if err := checkName("queue", name); err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no queues in %q", ErrInvalidName, s)
	}
	return out, nil
}
