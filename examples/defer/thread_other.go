//go:build !linux

package main

import "os"

// threadID has no portable meaning off Linux; the program needs Linux to run.
func threadID() int { return os.Getpid() }
