// Package testutil holds helpers shared by the project's tests: the backend
// table the conformance suites iterate over, and CheckLeaks (leakcheck.Check
// under the name the loop's tests use), and HalfCloseClients, the
// request-then-shutdown client the examples are tested with.
//
// It is imported only by _test.go files.
//
//	func TestX(t *testing.T) {
//		testutil.CheckLeaks(t) // fails the test if goroutines or fds outlive it
//		...
//	}
package testutil
