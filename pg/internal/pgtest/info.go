package pgtest

import (
	"context"

	"github.com/iterjob/iterjob/iterable"
)

func jobID(ctx context.Context) string {
	info, _ := iterable.InfoFromContext(ctx)
	return info.JobID
}
