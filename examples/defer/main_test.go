package main

import (
	"bytes"
	"context"
	"regexp"
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
		m := regexp.MustCompile(`^Defer thread (\d+)\nMain thread (\d+)\n$`).FindStringSubmatch(out.String())
		require.NotNil(t, m, "output: %q", out.String())
		assert.NotEqual(t, m[1], m[2], "the op runs on a worker, not on the loop thread")
	})
}

func TestBadFlags(t *testing.T) {
	assert.Error(t, run(context.Background(), &bytes.Buffer{}, []string{"-scale", "-1"}))
}
