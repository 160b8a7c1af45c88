package loop

import (
	"os"
	"testing"
)

// TestMain runs the package's tests; with RINGMACHINE_TEST_PROCESS_FDS=1
// every io_uring loop serves on process fds (URingOptions.ProcessFDs)
// instead of direct descriptors, so `make test` runs the whole suite both
// ways.
func TestMain(m *testing.M) {
	testHookProcessFDs = os.Getenv("RINGMACHINE_TEST_PROCESS_FDS") == "1"
	os.Exit(m.Run())
}
