//go:build race

package testutil

// Race reports whether the tests run under the race detector, which slows
// them several times over: a test that repeats a cycle to catch a rare
// interleaving (run again and again without -race in make test's hazard
// stage) may run fewer cycles under it, where data races, not rare
// schedules, are the quarry.
const Race = true
