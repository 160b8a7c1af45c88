package main

import (
	"bytes"
	"os"
	"regexp"
	"testing"
)

// TestMain lets the test binary act as a client child, as the program does
// (spawn re-executes itself with -child).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "-child" {
		if err := child(os.Args[2:]); err != nil {
			os.Stderr.WriteString("idle child: " + err.Error() + "\n")
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestIdleSmall runs the whole measurement on 300 connections over two
// client processes: every connection is established, echoes once (each
// client checks every byte) and the table row reports them.
func TestIdleSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the echo example and opens 300 connections")
	}
	var out bytes.Buffer
	if err := run(&out, []string{"-n", "300", "-per-child", "150", "-loops", "1", "-hold", "0s"}); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	row := regexp.MustCompile(`(?m)^\| 300 \| [^|]+ \| \d+ \| -?\d+ B \| -?\d+ B \| -?\d+ B \| [^|]+ \|$`)
	if !row.Match(out.Bytes()) {
		t.Fatalf("no result row in:\n%s", out.String())
	}
}

// TestIdleBadFlags rejects counts that cannot work.
func TestIdleBadFlags(t *testing.T) {
	for _, args := range [][]string{{"-n", "0"}, {"-per-child", "-1"}} {
		if err := run(&bytes.Buffer{}, args); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
