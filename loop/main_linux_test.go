package loop

import (
	"os"
	"testing"
)

// TestMain runs the package's tests; with RINGMACHINE_TEST_DIRECT=1 every
// loop serves on io_uring direct descriptors (Options.URingDirect), so
// `make test` runs the whole suite on them too.
func TestMain(m *testing.M) {
	testHookDirect = os.Getenv("RINGMACHINE_TEST_DIRECT") == "1"
	os.Exit(m.Run())
}
