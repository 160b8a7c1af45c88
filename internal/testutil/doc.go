// Package testutil holds helpers shared by the project's tests: the backend
// table the conformance suites iterate over, and CheckLeaks (leakcheck.Check
// under the name the loop's tests use), and the examples' harnesses:
// HalfCloseClients (request-then-shutdown clients) and ChildMain with
// AcceptErrors (the server in a child process short of descriptors).
//
// It is imported only by _test.go files.
//
//	func TestX(t *testing.T) {
//		testutil.CheckLeaks(t) // fails the test if goroutines or fds outlive it
//		...
//	}
package testutil
