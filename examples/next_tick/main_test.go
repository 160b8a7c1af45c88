package main

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
)

// TestOutput runs the tutorial on both backends, at a tenth of its pace,
// and checks its output against the timer semantics (testutil.CheckTicks):
// only "Hai" lines, none early, and fewer than four only when the
// timestamps show the loop ran late (the periodic timer drifts by design,
// so a late loop loses the fourth to the timer at five intervals). A late
// run is repeated at twice the scale, where the same delays weigh half as
// much, until one prints the four lines of the tutorial.
func TestOutput(t *testing.T) {
	sched := testutil.TickRun{Tick: "Hai", End: 5}
	testutil.ForEachBackendEnv(t, func(t *testing.T) {
		testutil.CheckLeaks(t)
		for step := range 4 { // -scale 0.1, 0.2, 0.4, 0.8
			scale := 0.1 * float64(int(1)<<step)
			sched.Interval = time.Duration(float64(time.Second) * scale)
			out := testutil.NewLines()
			require.NoError(t, run(context.Background(), out, []string{"-scale", fmt.Sprint(scale)}))
			ticks, full := testutil.CheckTicks(t, out.Lines(), sched)
			if full || t.Failed() {
				return
			}
			t.Logf("-scale %v: the loop ran late and printed %d lines", scale, ticks)
		}
		t.Fatal("late at every scale up to 0.8")
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
}
