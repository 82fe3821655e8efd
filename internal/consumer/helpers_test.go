package consumer_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/iterjob/iterjob/internal/consumer"
	"github.com/iterjob/iterjob/internal/testutil"
)

func newConsumer(t *testing.T, r testutil.Redis, cc consumer.Config) *consumer.Consumer {
	t.Helper()
	cc.Namespace = r.Namespace
	cc.Logger = quiet
	c, err := consumer.New(r.Client, cc)
	require.NoError(t, err)
	require.NoError(t, c.Start(t.Context()))
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	return c
}
