package main

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

// wait bounds every wait: generous for -race on a loaded machine.
const wait = 15 * time.Second

// tailRun is tail running in the background.
type tailRun struct {
	out, errOut *testutil.LockedBuffer
	done        chan error
	cancel      context.CancelFunc
}

// startTail runs tail with args; stderr is the run's until it returns.
// A cleanup stops it.
func startTail(t *testing.T, args ...string) *tailRun {
	t.Helper()
	r := &tailRun{out: new(testutil.LockedBuffer), errOut: new(testutil.LockedBuffer), done: make(chan error, 1)}
	old := stderr
	stderr = r.errOut
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- run(ctx, r.out, args) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(wait):
			t.Error("tail did not stop")
		}
		stderr = old
	})
	return r
}

// expectOut waits until tail has printed exactly want.
func (r *tailRun) expectOut(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		got := r.out.String()
		if got == want {
			return
		}
		if len(got) > len(want) || !strings.HasPrefix(want, got) || time.Now().After(deadline) {
			require.Equal(t, want, got)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// expectEnd waits for run to return nil after printing the notice.
func (r *tailRun) expectEnd(t *testing.T, notice string) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		require.NoError(t, err)
	case <-time.After(wait):
		t.Fatal("tail did not exit")
	}
	assert.Equal(t, notice, r.errOut.String())
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

func numbered(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "%d\n", i)
	}
	return b.String()
}

// TestFollow: the last lines, then appends as they come (a line written in
// two parts, 3 MiB at once), a truncation with its notice, and the exit
// when the file is deleted, on both backends; each byte exactly once.
func TestFollow(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		path := filepath.Join(t.TempDir(), "log")
		require.NoError(t, os.WriteFile(path, []byte(numbered(1, 15)), 0o600))
		r := startTail(t, "-n", "3", path)
		want := numbered(13, 15)
		r.expectOut(t, want)

		appendTo(t, path, "16\n17\n")
		want += "16\n17\n"
		r.expectOut(t, want)
		appendTo(t, path, "par")
		want += "par"
		r.expectOut(t, want)
		appendTo(t, path, "tial\n")
		want += "tial\n"
		r.expectOut(t, want)

		big := strings.Repeat("0123456789abcdef", 3<<20/16-1) + "\n" // over 3 ticks' worth
		appendTo(t, path, big)
		want += big
		r.expectOut(t, want)

		require.NoError(t, os.Truncate(path, 0))
		notice := "tail: " + path + ": file truncated\n"
		require.Eventually(t, func() bool { return r.errOut.String() == notice }, wait, 2*time.Millisecond)
		appendTo(t, path, "after\n")
		want += "after\n"
		r.expectOut(t, want)

		appendTo(t, path, "last\n")
		require.NoError(t, os.Remove(path))
		r.expectEnd(t, notice+"tail: "+path+": file deleted\n")
		assert.Equal(t, want+"last\n", r.out.String())
	})
}

// TestMoved: a renamed file ends the run once what was appended before
// is printed.
func TestMoved(t *testing.T) {
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		dir := t.TempDir()
		path := filepath.Join(dir, "log")
		require.NoError(t, os.WriteFile(path, []byte("a\nb"), 0o600))
		r := startTail(t, path)
		r.expectOut(t, "a\nb")
		appendTo(t, path, "c\n")
		require.NoError(t, os.Rename(path, filepath.Join(dir, "old")))
		r.expectEnd(t, "tail: "+path+": file moved\n")
		assert.Equal(t, "a\nbc\n", r.out.String())
	})
}

// TestLines: -n counts lines from the end, a last line without a newline
// included, and reads backwards across buffer boundaries.
func TestLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "f")
	for _, tc := range []struct {
		data string
		n    int
		want string
	}{
		{"", 10, ""},
		{"\n", 1, "\n"},
		{"\n\n\n", 2, "\n\n"},
		{"a\nb\nc\n", 2, "b\nc\n"},
		{"a\nb\nc", 2, "b\nc"},
		{"a\nb\nc", 0, ""},
		{"a\nb\nc\n", 3, "a\nb\nc\n"},
		{"a\nb\nc\n", 10, "a\nb\nc\n"},
		{"long line\nanother long line\n", 1, "another long line\n"},
	} {
		require.NoError(t, os.WriteFile(path, []byte(tc.data), 0o600))
		f, err := os.Open(path)
		require.NoError(t, err)
		for _, bufSize := range []int{1, 3, 64} {
			off, err := lastLines(f, int64(len(tc.data)), tc.n, make([]byte, bufSize))
			require.NoError(t, err)
			assert.Equal(t, tc.want, tc.data[off:], "%q -n %d, buffer %d", tc.data, tc.n, bufSize)
		}
		f.Close()
	}
}

// TestCancel: a cancelled context (SIGINT) stops tail with no error and
// nothing left behind.
func TestCancel(t *testing.T) {
	testutil.CheckLeaks(t)
	path := filepath.Join(t.TempDir(), "f")
	require.NoError(t, os.WriteFile(path, []byte("x\n"), 0o600))
	r := startTail(t, "-n", "1", path)
	r.expectOut(t, "x\n") // watching now
	appendTo(t, path, "y\n")
	r.expectOut(t, "x\ny\n")
	r.cancel()
	r.expectEnd(t, "")
}

func TestBadArgs(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	var flagErr bytes.Buffer
	old := stderr
	stderr = &flagErr
	defer func() { stderr = old }()
	ctx := context.Background()

	assert.ErrorContains(t, run(ctx, &bytes.Buffer{}, []string{"-n", "-1", path}), "-n must not be negative")
	assert.ErrorContains(t, run(ctx, &bytes.Buffer{}, nil), "one file expected")
	assert.Contains(t, flagErr.String(), "usage: tail")
	assert.ErrorContains(t, run(ctx, &bytes.Buffer{}, []string{path, path}), "one file expected, got 2")
	assert.ErrorIs(t, run(ctx, &bytes.Buffer{}, []string{filepath.Join(dir, "missing")}), fs.ErrNotExist)
	assert.ErrorContains(t, run(ctx, &bytes.Buffer{}, []string{dir}), "not a regular file")
	flagErr.Reset()
	assert.Error(t, run(ctx, &bytes.Buffer{}, []string{"-nope", path}))
	assert.Contains(t, flagErr.String(), "flag provided but not defined: -nope", "flag errors go to stderr")
}
