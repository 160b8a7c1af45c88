package loop

import (
	"os"
	"testing"
)

// TestMain runs the package's tests; with RINGMACHINE_TEST_PROCESS_FDS=1
// every io_uring loop serves on process fds (URingOptions.ProcessFDs)
// instead of direct descriptors, and with RINGMACHINE_TEST_RECV_BUNDLE=1
// receives in bundles (RecvMultishotBundle), so `make test` runs the suite
// those ways too.
func TestMain(m *testing.M) {
	testHookProcessFDs = os.Getenv("RINGMACHINE_TEST_PROCESS_FDS") == "1"
	testHookRecvBundle = os.Getenv("RINGMACHINE_TEST_RECV_BUNDLE") == "1"
	os.Exit(m.Run())
}
