package loop_test

import (
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// TestRunRaisesOneProc: a loop run with GOMAXPROCS 1 raises it to 2 (and a
// group's default size stays 1, the CPUs there are); FixedGOMAXPROCS
// leaves it at 1; a larger GOMAXPROCS is never touched.
func TestRunRaisesOneProc(t *testing.T) {
	testutil.ForEachBackend(t, func(t *testing.T, b loop.Backend) {
		for _, tc := range []struct {
			name        string
			start, want int
			fixed       bool
		}{
			{"one", 1, 2, false},
			{"one-fixed", 1, 1, true},
			{"three", 3, 3, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				defer loop.SetGOMAXPROCSForTest(tc.start)()
				l, err := loop.New(loop.Options{Backend: b, FixedGOMAXPROCS: tc.fixed})
				require.NoError(t, err)
				var during int
				require.NoError(t, l.Run(func(l *loop.Loop) {
					during = runtime.GOMAXPROCS(0)
					l.Stop()
				}))
				assert.Equal(t, tc.want, during, "GOMAXPROCS while the loop runs")
				assert.Equal(t, tc.want, runtime.GOMAXPROCS(0), "never lowered again")
				g, err := loop.NewGroup(0, loop.Options{Backend: b})
				require.NoError(t, err)
				assert.Equal(t, tc.start, g.Len(), "a default group has one loop per CPU the process had")
			})
		}
	})
}
