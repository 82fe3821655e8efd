package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// ServedKinds returns the job kinds that the runners heartbeating in the
// client's namespace registered, sorted, without duplicates. It reads the
// processes' heartbeats (Processes), so it knows only runners that are up.
func (c *Client) ServedKinds(ctx context.Context) ([]string, error) {
	procs, err := c.Processes(ctx)
	if err != nil {
		return nil, err
	}
	return servedKinds(procs), nil
}

func servedKinds(procs []Process) []string {
	var kinds []string
	for _, p := range procs {
		list, _ := p.Extra["kinds"].([]any)
		for _, k := range list {
			if s, ok := k.(string); ok {
				kinds = append(kinds, s)
			}
		}
	}
	slices.Sort(kinds)
	return slices.Compact(kinds)
}

// RequireServed returns an error matching ErrUnknownKind unless a runner
// heartbeating in the client's namespace serves each of kinds. It is a
// check for a process that enqueues for runners elsewhere, at start-up or
// in a readiness probe: it catches the runners and the enqueuer configured
// for different namespaces (no runner heartbeats in the enqueuer's), or a
// kind no deployed runner registers. It is not done on every enqueue, since
// runners may be down for a deploy while jobs are added; Config.Kinds is
// the per-enqueue check.
func (c *Client) RequireServed(ctx context.Context, kinds ...string) error {
	procs, err := c.Processes(ctx)
	if err != nil {
		return err
	}
	if len(procs) == 0 {
		return fmt.Errorf("%w: no runner heartbeats in namespace %q (is it the namespace the runners use?)", ErrUnknownKind, c.db.Keys.Namespace())
	}
	served := servedKinds(procs)
	var missing []string
	for _, k := range kinds {
		if _, ok := slices.BinarySearch(served, k); !ok {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: no runner in namespace %q serves %s (its %d processes serve %s)", ErrUnknownKind,
			c.db.Keys.Namespace(), strings.Join(missing, ", "), len(procs), strings.Join(served, ", "))
	}
	return nil
}
