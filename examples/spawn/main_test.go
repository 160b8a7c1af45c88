package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

func TestOutput(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		var out bytes.Buffer
		require.NoError(t, run(context.Background(), &out, []string{"-scale", "0.1"}))
		assert.Equal(t, "Periodic\nReceived hello\nPeriodic\n", out.String())
	})
}

func TestBadFlags(t *testing.T) {
	assert.Error(t, run(context.Background(), &bytes.Buffer{}, []string{"-scale", "0"}))
	var flagErr bytes.Buffer
	oldStderr := stderr
	stderr = &flagErr
	defer func() { stderr = oldStderr }()
	assert.Error(t, run(context.Background(), &bytes.Buffer{}, []string{"-nope"}))
	assert.Contains(t, flagErr.String(), "flag provided but not defined: -nope", "flag errors go to stderr")
}

func TestCancel(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	require.NoError(t, run(ctx, &out, nil), "a cancelled context stops the loop")
	assert.Empty(t, out.String())
}
