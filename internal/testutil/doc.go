// Package testutil holds helpers shared by the project's tests: a goroutine
// and file-descriptor leak check, and the backend table the conformance
// suites iterate over.
//
// It is imported only by _test.go files.
//
//	func TestX(t *testing.T) {
//		testutil.CheckLeaks(t) // fails the test if goroutines or fds outlive it
//		...
//	}
package testutil
