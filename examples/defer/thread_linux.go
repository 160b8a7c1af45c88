package main

import "golang.org/x/sys/unix"

// threadID returns the calling OS thread's ID.
func threadID() int { return unix.Gettid() }
