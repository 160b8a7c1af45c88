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
		require.NoError(t, run(context.Background(), &out, nil))
		assert.Equal(t, "2 + 2 == 4\n", out.String())
	})
}

func TestBadFlags(t *testing.T) {
	var flagErr bytes.Buffer
	oldStderr := stderr
	stderr = &flagErr
	defer func() { stderr = oldStderr }()
	assert.Error(t, run(context.Background(), &bytes.Buffer{}, []string{"-x"}))
	assert.Contains(t, flagErr.String(), "flag provided but not defined: -x", "flag errors go to stderr")
}
