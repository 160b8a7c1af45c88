// Command tail is tail -f on RingMachine: it prints the last lines of a
// file, then what is appended to it as it grows, told by the loop's file
// watch (loop.Loop.WatchFile, EventMachine's EM.watch_file).
//
//	go run ./examples/tail /var/log/syslog         # the last 10 lines, then more
//	go run ./examples/tail -n 0 app.log            # only what is appended
//
// A file that gets shorter was truncated: tail says so on stderr ("tail:
// FILE: file truncated") and prints it again from its start. When the file
// is deleted or renamed, tail prints what was appended up to then, says so
// on stderr ("tail: FILE: file deleted" or "file moved") and exits with
// status 0; it does not follow the name to a new file as tail -F does.
// SIGINT or SIGTERM stops it.
//
// The file is read with plain reads on the loop goroutine (a regular file
// is always ready), at most 1 MiB per loop iteration, so a large append
// is printed over several iterations while timers and other work go on.
// tail holds the file open, so the kernel reports its deletion (FileDeleted)
// only once no descriptor is left: tail sees it sooner as the change of
// the link count (loop.FileAttributeWatcher) and checks fstat's count.
//
// The backend follows RINGMACHINE_BACKEND (uring or epoll; io_uring when
// available otherwise).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/ringmachine/ringmachine/loop"
)

func main() {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	if err := run(ctx, os.Stdout, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tail:", err)
		os.Exit(1)
	}
}

// stderr receives the usage text, flag errors and tail's notices
// (truncation, deletion, move): a variable for the tests.
var stderr io.Writer = os.Stderr

// maxPerTick bounds the bytes printed in one loop iteration.
const maxPerTick = 1 << 20

func run(ctx context.Context, stdout io.Writer, args []string) error {
	fs := flag.NewFlagSet("tail", flag.ContinueOnError)
	fs.SetOutput(stderr) // usage and flag errors
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: tail [-n lines] file")
		fs.PrintDefaults()
	}
	n := fs.Int("n", 10, "print the last `lines` lines first")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 0 {
		return fmt.Errorf("-n must not be negative, got %d", *n)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("one file expected, got %d arguments", fs.NArg())
	}
	path := fs.Arg(0)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil {
		return err
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	t := &tailer{path: path, f: f, out: stdout, buf: make([]byte, 64<<10)}
	runErr := loop.Run(func(l *loop.Loop) {
		t.l = l
		stop := context.AfterFunc(ctx, l.Stop)
		_ = l.AddShutdownHook(func() {
			stop()
			t.stopping = true // the loop's stop ends the watch
		})
		// The watch first: whatever is appended from now on is heard of.
		if t.w, t.err = l.WatchFile(path, t); t.err != nil {
			l.Stop()
			return
		}
		size, err := t.size()
		if err == nil {
			t.off, err = lastLines(f, size, *n, t.buf)
		}
		if err != nil {
			t.fail(err)
			return
		}
		t.pump()
	})
	return errors.Join(t.err, runErr)
}

// tailer prints a file as it grows. Everything runs on the loop goroutine.
type tailer struct {
	l        *loop.Loop
	w        *loop.FileWatch
	path     string
	f        *os.File
	out      io.Writer
	buf      []byte
	off      int64  // the next byte to print
	queued   bool   // a pump is queued with NextTick
	closing  string // why the run ends once everything is printed
	stopping bool   // the loop is stopping
	err      error
}

// size returns the file's size.
func (t *tailer) size() (int64, error) {
	fi, err := t.f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// pump prints what the file holds past off, at most maxPerTick bytes now
// and the rest from a NextTick; a file shorter than off was truncated.
// Once everything is printed, a deleted or moved file ends the run.
func (t *tailer) pump() {
	t.queued = false
	if t.err != nil {
		return
	}
	size, err := t.size()
	if err != nil {
		t.fail(err)
		return
	}
	if size < t.off {
		fmt.Fprintf(stderr, "tail: %s: file truncated\n", t.path)
		t.off = 0
	}
	for sent := 0; t.off < size; {
		if sent >= maxPerTick {
			t.queue()
			return
		}
		k, err := t.f.ReadAt(t.buf[:min(int64(len(t.buf)), size-t.off)], t.off)
		if k > 0 {
			if _, werr := t.out.Write(t.buf[:k]); werr != nil {
				t.fail(werr)
				return
			}
			t.off += int64(k)
			sent += k
		}
		if err == io.EOF {
			break // truncated meanwhile: the next pump sees it
		}
		if err != nil {
			t.fail(err)
			return
		}
	}
	if t.closing != "" {
		fmt.Fprintf(stderr, "tail: %s: %s\n", t.path, t.closing)
		t.w.Stop()
		t.l.Stop()
	}
}

// queue runs pump from a NextTick, once however often it is asked.
func (t *tailer) queue() {
	if t.queued {
		return
	}
	t.queued = true
	if err := t.l.NextTick(t.pump); err != nil {
		t.queued = false
	}
}

// end prints what is left and ends the run with why.
func (t *tailer) end(why string) {
	if t.closing == "" {
		t.closing = why
	}
	t.queue()
}

func (t *tailer) fail(err error) {
	if t.err == nil {
		t.err = err
	}
	t.l.Stop()
}

// FileModified: the file grew, or was truncated.
func (t *tailer) FileModified(*loop.FileWatch) { t.queue() }

// FileMoved: the name no longer leads to the file.
func (t *tailer) FileMoved(*loop.FileWatch) { t.end("file moved") }

// FileDeleted comes once no descriptor of the file is left; tail holds
// one, so it hears of a deletion in FileAttributesChanged first.
func (t *tailer) FileDeleted(*loop.FileWatch) { t.end("file deleted") }

// FileAttributesChanged: an unlink of the file shows as its link count
// dropping to 0.
func (t *tailer) FileAttributesChanged(*loop.FileWatch) {
	fi, err := t.f.Stat()
	if err != nil {
		t.fail(err)
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink == 0 {
		t.end("file deleted")
	}
}

// Unbind: the watch ended without tail asking (the filesystem went away).
func (t *tailer) Unbind(*loop.FileWatch) {
	if t.closing == "" && !t.stopping {
		t.fail(errors.New(t.path + ": the watch ended"))
	}
}

// lastLines returns the offset of the last n lines of the file of size
// bytes (a last line without a newline counts), reading backwards with
// buf.
func lastLines(f *os.File, size int64, n int, buf []byte) (int64, error) {
	if n == 0 {
		return size, nil
	}
	first := true // the byte at size-1: its newline ends the last line
	for end := size; end > 0; {
		k := min(int64(len(buf)), end)
		b := buf[:k]
		if _, err := f.ReadAt(b, end-k); err == io.EOF {
			return 0, nil // truncated meanwhile: print from the start
		} else if err != nil {
			return 0, err
		}
		for i := len(b) - 1; i >= 0; i-- {
			if b[i] == '\n' && !first {
				if n--; n == 0 {
					return end - k + int64(i) + 1, nil
				}
			}
			first = false
		}
		end -= k
	}
	return 0, nil
}
