package loop_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/loop"
)

// fileEvents records what a FileWatcher hears, as "tag event" or
// "tag event:name" for a directory's entry, on one channel shared by the
// watches of a test.
type fileEvents struct {
	tag string
	ch  chan string
	// onModified, when set, runs in FileModified (on the loop goroutine).
	onModified func(w *loop.FileWatch)
}

func (f *fileEvents) send(w *loop.FileWatch, ev string) {
	if w.Name() != "" {
		ev += ":" + w.Name()
	}
	f.ch <- f.tag + " " + ev
}

func (f *fileEvents) FileModified(w *loop.FileWatch) {
	f.send(w, "modified")
	if f.onModified != nil {
		f.onModified(w)
	}
}
func (f *fileEvents) FileMoved(w *loop.FileWatch)             { f.send(w, "moved") }
func (f *fileEvents) FileDeleted(w *loop.FileWatch)           { f.send(w, "deleted") }
func (f *fileEvents) FileAttributesChanged(w *loop.FileWatch) { f.send(w, "attrib") }
func (f *fileEvents) Unbind(w *loop.FileWatch)                { f.send(w, "unbind") }

// watchFile starts a watch of path on g's loop that reports to a new
// recorder tagged tag on ch.
func watchFile(t *testing.T, g *bgLoop, path, tag string, ch chan string) (*loop.FileWatch, *fileEvents) {
	t.Helper()
	fe := &fileEvents{tag: tag, ch: ch}
	var w *loop.FileWatch
	var err error
	g.do(func(l *loop.Loop) { w, err = l.WatchFile(path, fe) })
	require.NoError(t, err)
	require.Equal(t, path, w.Path())
	return w, fe
}

// expectEvent reads ch until want arrives; what comes before it must be
// in the set allowed (the kernel merges identical events only while they
// are unread, so one write may make one or several, and an unlink changes
// the link count, IN_ATTRIB, before the deletion).
func expectEvent(t *testing.T, ch <-chan string, want string, allowed ...string) {
	t.Helper()
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
			if !assert.Contains(t, allowed, got, "waiting for %q", want) {
				return
			}
		case <-time.After(wait):
			t.Fatalf("no %q", want)
		}
	}
}

// expectQuiet checks that nothing but allowed arrives on ch once the loop
// has had time to read what the kernel queued.
func expectQuiet(t *testing.T, g *bgLoop, ch <-chan string, allowed ...string) {
	t.Helper()
	g.do(func(*loop.Loop) {})
	g.do(func(*loop.Loop) {})
	deadline := time.After(50 * time.Millisecond)
	for {
		select {
		case got := <-ch:
			assert.Contains(t, allowed, got, "unexpected event")
		case <-deadline:
			return
		}
	}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.WriteString(s)
	require.NoError(t, err)
	require.NoError(t, f.Close())
}

// testWatchFile: a watched file's writes, appends and truncation are
// FileModified; a rename is FileMoved and the watch follows the file; its
// deletion is FileDeleted then Unbind, once, and nothing after; a path
// that does not exist and a nil watcher are refused.
func testWatchFile(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	require.NoError(t, os.WriteFile(path, []byte("one\n"), 0o600))

	g.do(func(l *loop.Loop) {
		_, err := l.WatchFile(filepath.Join(dir, "missing"), &fileEvents{})
		assert.ErrorIs(t, err, os.ErrNotExist)
		assert.Contains(t, err.Error(), "missing")
		_, err = l.WatchFile(filepath.Join(dir, "missing", "x"), &fileEvents{})
		assert.ErrorIs(t, err, os.ErrNotExist)
		_, err = l.WatchFile(path, nil)
		assert.ErrorIs(t, err, loop.ErrNilFunc)
	})

	ch := make(chan string, 64)
	_, _ = watchFile(t, g, path, "a", ch)
	mod := "a modified"
	require.NoError(t, os.WriteFile(path, []byte("two\n"), 0o600)) // truncates, writes
	expectEvent(t, ch, mod)
	expectQuiet(t, g, ch, mod)
	appendFile(t, path, "three\n")
	expectEvent(t, ch, mod)
	expectQuiet(t, g, ch, mod)
	require.NoError(t, os.Truncate(path, 0))
	expectEvent(t, ch, mod)
	expectQuiet(t, g, ch, mod)

	moved := filepath.Join(dir, "b")
	require.NoError(t, os.Rename(path, moved))
	expectEvent(t, ch, "a moved")
	appendFile(t, moved, "four\n") // the watch follows the inode
	expectEvent(t, ch, mod)
	expectQuiet(t, g, ch, mod)
	require.NoError(t, os.WriteFile(path, []byte("new\n"), 0o600)) // not the watched inode
	expectQuiet(t, g, ch)

	require.NoError(t, os.Remove(moved))
	expectEvent(t, ch, "a deleted", "a attrib")
	expectEvent(t, ch, "a unbind")
	expectQuiet(t, g, ch)
}

// testWatchFileDir: a watched directory reports its entries' creation,
// change, renaming and removal as FileModified naming the entry; the
// directory's own removal is FileDeleted then Unbind.
func testWatchFileDir(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	dir := filepath.Join(t.TempDir(), "d")
	require.NoError(t, os.Mkdir(dir, 0o700))
	ch := make(chan string, 64)
	watchFile(t, g, dir, "d", ch)

	entry := filepath.Join(dir, "e")
	require.NoError(t, os.WriteFile(entry, []byte("x"), 0o600))
	expectEvent(t, ch, "d modified:e") // IN_CREATE, and IN_MODIFY of the write
	expectQuiet(t, g, ch, "d modified:e")
	appendFile(t, entry, "y")
	expectEvent(t, ch, "d modified:e")
	expectQuiet(t, g, ch, "d modified:e")
	require.NoError(t, os.Chmod(entry, 0o644))
	expectEvent(t, ch, "d attrib:e")
	require.NoError(t, os.Rename(entry, filepath.Join(dir, "f")))
	expectEvent(t, ch, "d modified:e")
	expectEvent(t, ch, "d modified:f")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o700))
	expectEvent(t, ch, "d modified:sub")
	require.NoError(t, os.Remove(filepath.Join(dir, "sub")))
	expectEvent(t, ch, "d modified:sub")
	require.NoError(t, os.Remove(filepath.Join(dir, "f")))
	expectEvent(t, ch, "d modified:f")
	expectQuiet(t, g, ch)

	require.NoError(t, os.Remove(dir))
	expectEvent(t, ch, "d deleted", "d attrib")
	expectEvent(t, ch, "d unbind")
	expectQuiet(t, g, ch)
}

// testWatchFileShared: two watches of one file share the kernel's watch:
// stopping one leaves the other hearing; a watch stopped by another's
// callback hears nothing more, not even the event being delivered; when
// both have ended the instance is closed (the leak check) and a new watch
// makes a new one.
func testWatchFileShared(t *testing.T, b loop.Backend) {
	g := startLoop(t, b, loop.Options{})
	path := filepath.Join(t.TempDir(), "a")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	ch := make(chan string, 64)
	w1, _ := watchFile(t, g, path, "1", ch)
	w2, _ := watchFile(t, g, path, "2", ch)
	appendFile(t, path, "x")
	expectEvent(t, ch, "1 modified", "2 modified")
	expectEvent(t, ch, "2 modified", "1 modified")
	expectQuiet(t, g, ch, "1 modified", "2 modified")

	g.do(func(*loop.Loop) { w1.Stop() })
	expectEvent(t, ch, "1 unbind")
	appendFile(t, path, "y")
	expectEvent(t, ch, "2 modified")
	expectQuiet(t, g, ch, "2 modified")

	// w3 is first in line, and its FileModified stops w4, which hears
	// nothing of the event being delivered.
	w3, fe3 := watchFile(t, g, path, "3", ch)
	g.do(func(*loop.Loop) { w2.Stop() })
	expectEvent(t, ch, "2 unbind")
	w4, _ := watchFile(t, g, path, "4", ch)
	g.do(func(*loop.Loop) {
		fe3.onModified = func(*loop.FileWatch) { w4.Stop() }
	})
	appendFile(t, path, "z")
	expectEvent(t, ch, "3 modified")
	expectEvent(t, ch, "4 unbind")
	g.do(func(*loop.Loop) { fe3.onModified = nil })
	expectQuiet(t, g, ch, "3 modified")

	g.do(func(*loop.Loop) { w3.Stop() })
	expectEvent(t, ch, "3 unbind")
	appendFile(t, path, "!")
	expectQuiet(t, g, ch)

	// Every watch has ended: a new one makes a new instance.
	watchFile(t, g, path, "5", ch)
	appendFile(t, path, "?")
	expectEvent(t, ch, "5 modified")
	require.NoError(t, g.stop())
	expectEvent(t, ch, "5 unbind", "5 modified")
}

// testWatchFileStop: after Stop no callback but Unbind, which runs once,
// after the callback that called Stop and not inside it; a second Stop
// does nothing; a panicking callback is reported and the watch goes on;
// the loop's stop ends the watches left, each with one Unbind, and closes
// the instance (the leak check).
func testWatchFileStop(t *testing.T, b loop.Backend) {
	errs := make(chan error, 8)
	g := startLoop(t, b, loop.Options{ErrorHandler: func(err error) { errs <- err }})
	dir := t.TempDir()
	path := filepath.Join(dir, "a")
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	ch := make(chan string, 64)
	w, _ := watchFile(t, g, path, "a", ch)
	g.do(func(*loop.Loop) {
		w.Stop()
		w.Stop()
		assert.Empty(t, ch, "Unbind ran inside Stop")
	})
	expectEvent(t, ch, "a unbind")
	appendFile(t, path, "x")
	require.NoError(t, os.Rename(path, path+".moved"))
	require.NoError(t, os.Remove(path+".moved"))
	expectQuiet(t, g, ch)
	g.do(func(*loop.Loop) { w.Stop() })
	expectQuiet(t, g, ch)

	// A panic in a callback is the ErrorHandler's; the watch goes on.
	require.NoError(t, os.WriteFile(path, nil, 0o600))
	var panicked bool
	_, fe := watchFile(t, g, path, "p", ch)
	g.do(func(*loop.Loop) {
		fe.onModified = func(*loop.FileWatch) {
			if !panicked {
				panicked = true
				panic("file watcher panic")
			}
		}
	})
	appendFile(t, path, "x")
	expectEvent(t, ch, "p modified")
	select {
	case err := <-errs:
		var pe *loop.PanicError
		require.ErrorAs(t, err, &pe)
		assert.Equal(t, "file watcher panic", pe.Value)
	case <-time.After(wait):
		t.Fatal("the panic was not reported")
	}
	expectQuiet(t, g, ch, "p modified")
	appendFile(t, path, "y")
	expectEvent(t, ch, "p modified")

	// The loop stops with watches open: a file, the same file again and a
	// directory.
	watchFile(t, g, path, "q", ch)
	watchFile(t, g, dir, "d", ch)
	require.NoError(t, g.stop())
	var unbinds []string
	for len(ch) > 0 {
		if ev := <-ch; strings.HasSuffix(ev, " unbind") {
			unbinds = append(unbinds, ev)
		}
	}
	assert.ElementsMatch(t, []string{"p unbind", "q unbind", "d unbind"}, unbinds)
	assert.Empty(t, errs)
}
