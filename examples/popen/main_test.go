package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

// TestRun runs programs through the example on both backends: a 5 MB file
// through cat comes back byte for byte, a failing program's status is the
// last line, -timeout ends a program that runs on, -merge catches stderr.
func TestRun(t *testing.T) {
	in := filepath.Join(t.TempDir(), "in")
	data := make([]byte, 5<<20)
	_, _ = rand.Read(data)
	require.NoError(t, os.WriteFile(in, data, 0o600))
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		var out bytes.Buffer
		require.NoError(t, run(context.Background(), &out, []string{"-in", in, "--", "cat"}))
		require.Equal(t, len(data)+len("exit status 0\n"), out.Len())
		assert.True(t, bytes.Equal(data, out.Bytes()[:len(data)]), "cat's output differs from the file")
		assert.Equal(t, "exit status 0\n", out.String()[len(data):])

		out.Reset()
		assert.ErrorIs(t, run(context.Background(), &out, []string{"--", "sh", "-c", "echo hi; exit 3"}), errFailed)
		assert.Equal(t, "hi\nexit status 3\n", out.String())

		out.Reset()
		assert.ErrorIs(t, run(context.Background(), &out, []string{"-timeout", "100ms", "--", "sleep", "10"}), errFailed)
		assert.Equal(t, "signal: terminated\n", out.String())

		out.Reset()
		require.NoError(t, run(context.Background(), &out, []string{"-merge", "--", "sh", "-c", "echo err >&2; sleep 0.05; echo out"}))
		assert.Equal(t, "err\nout\nexit status 0\n", out.String())

		out.Reset()
		err := run(context.Background(), &out, []string{"ringmachine-no-such-program"})
		assert.ErrorIs(t, err, exec.ErrNotFound)
		assert.Empty(t, out.String())
	})
}

// TestCancel: a cancelled context (SIGINT) stops the loop, which ends the
// program.
func TestCancel(t *testing.T) {
	testutil.CheckLeaks(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out bytes.Buffer
	err := run(ctx, &out, []string{"--", "sleep", "10"})
	assert.ErrorIs(t, err, errFailed)
	assert.Equal(t, "signal: terminated\n", out.String())
}

func TestBadFlags(t *testing.T) {
	var flagErr bytes.Buffer
	oldStderr := stderr
	stderr = &flagErr
	defer func() { stderr = oldStderr }()
	assert.Error(t, run(context.Background(), &bytes.Buffer{}, []string{"-nope"}))
	assert.Contains(t, flagErr.String(), "flag provided but not defined: -nope")
	assert.Error(t, run(context.Background(), &bytes.Buffer{}, nil), "no program")
	assert.Contains(t, flagErr.String(), "usage: popen")
	assert.Error(t, run(context.Background(), &bytes.Buffer{}, []string{"-timeout", "-1s", "true"}))
	assert.ErrorIs(t, run(context.Background(), &bytes.Buffer{}, []string{"-in", "/nonexistent", "true"}), os.ErrNotExist)
}
