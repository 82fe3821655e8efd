package iterjobtest_test

import (
	"context"
	"fmt"

	"github.com/iterjob/iterjob/enumerators"
	"github.com/iterjob/iterjob/iterable"
	"github.com/iterjob/iterjob/iterjobtest"
)

type greet struct{ seen []string }

func (g *greet) BuildEnumerator(_ context.Context, names []string, c *int) (enumerators.Enumerator[string, int], error) {
	return enumerators.Slice(names, c), nil
}

func (g *greet) EachIteration(_ context.Context, _ []string, name string) error {
	g.seen = append(g.seen, name)
	return nil
}

func (g *greet) OnStop(_ context.Context, _ []string, r iterable.StopReason) error {
	g.seen = append(g.seen, "stop:"+string(r))
	return nil
}

// Interrupt a job after two items, resume it, and check nothing was skipped
// or repeated.
func ExampleIterate() {
	ctx := context.Background()
	job := &greet{}
	names := []string{"Ada", "Grace", "Zoë", "Linus"}

	first, _ := iterjobtest.Iterate(ctx, job, names, nil, 2)
	fmt.Println(first.Stop, string(first.Cursor))
	rest, err := iterjobtest.Iterate(ctx, job, names, first, 0)
	fmt.Println(rest.Stop, rest.Items, rest.Total, err)
	fmt.Println(job.seen)
	// Output:
	// interrupted 2
	// completed 2 4 <nil>
	// [Ada Grace stop:interrupted Zoë Linus stop:completed]
}
