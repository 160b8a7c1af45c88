package loop

import "errors"

// FileWatcher is told of changes to a file or directory watched with
// [Loop.WatchFile] (EventMachine's FileWatch callbacks). Every method runs
// on the loop goroutine; a panic in one is handled as in any callback.
//
// Order: any number of FileModified and FileMoved calls (and
// FileAttributesChanged, see FileAttributeWatcher), in the order the
// kernel reported the changes, then, once the watch ends, Unbind exactly
// once. FileDeleted, when it comes, is the last call before Unbind.
type FileWatcher interface {
	// FileModified: the watched file's contents changed (IN_MODIFY: a
	// write, an append, a truncation). For a watched directory: an entry
	// was created, modified, deleted, or moved in or out (IN_CREATE,
	// IN_MODIFY, IN_DELETE, IN_MOVED_FROM, IN_MOVED_TO); w.Name() names it.
	FileModified(w *FileWatch)

	// FileMoved: the watched file or directory itself was renamed
	// (IN_MOVE_SELF). The watch follows it under its new name.
	FileMoved(w *FileWatch)

	// FileDeleted: the watched file or directory itself is gone
	// (IN_DELETE_SELF). Unbind follows.
	FileDeleted(w *FileWatch)

	// Unbind: the watch has ended, after FileDeleted, FileWatch.Stop, the
	// loop's stop, or the kernel dropping the watch (IN_IGNORED: the
	// filesystem was unmounted, say). It runs once per watch, never inside
	// Stop itself: in the close step after the phase in which the watch
	// ended.
	Unbind(w *FileWatch)
}

// FileAttributeWatcher is implemented by a [FileWatcher] that also wants
// to hear of metadata changes (IN_ATTRIB: permissions, ownership,
// timestamps, extended attributes, the link count), of the watched file or
// directory itself or, for a directory, of an entry (w.Name() names it).
// EventMachine has no such callback.
//
// This is how to hear of the deletion of a file that some descriptor
// still holds open (a reader's, say): the kernel sends IN_DELETE_SELF, and
// so FileDeleted, only once the last descriptor of the file is closed;
// until then the unlink shows as a change of the link count, which the
// holder of the descriptor can check (fstat's Nlink is 0).
type FileAttributeWatcher interface {
	FileAttributesChanged(w *FileWatch)
}

// FileWatcherFuncs makes a [FileWatcher] (and a [FileAttributeWatcher])
// of functions; a nil field is a callback that does nothing.
type FileWatcherFuncs struct {
	Modified          func(w *FileWatch)
	Moved             func(w *FileWatch)
	Deleted           func(w *FileWatch)
	AttributesChanged func(w *FileWatch)
	Unbound           func(w *FileWatch)
}

// FileModified calls f.Modified.
func (f *FileWatcherFuncs) FileModified(w *FileWatch) { call1(f.Modified, w) }

// FileMoved calls f.Moved.
func (f *FileWatcherFuncs) FileMoved(w *FileWatch) { call1(f.Moved, w) }

// FileDeleted calls f.Deleted.
func (f *FileWatcherFuncs) FileDeleted(w *FileWatch) { call1(f.Deleted, w) }

// FileAttributesChanged calls f.AttributesChanged.
func (f *FileWatcherFuncs) FileAttributesChanged(w *FileWatch) { call1(f.AttributesChanged, w) }

// Unbind calls f.Unbound.
func (f *FileWatcherFuncs) Unbind(w *FileWatch) { call1(f.Unbound, w) }

func call1(fn func(*FileWatch), w *FileWatch) {
	if fn != nil {
		fn(w)
	}
}

// FileWatch is a watch on one file or directory ([Loop.WatchFile];
// EventMachine's EM::FileWatch).
type FileWatch struct {
	l     *Loop
	ino   *inotifyState // the loop's inotify instance the watch is on
	wd    int32         // the instance's watch descriptor; shared by watches of one inode
	path  string
	name  string // the entry the callback running is about (Name)
	h     FileWatcher
	ended bool // Stop, FileDeleted, IN_IGNORED or the loop's stop: Unbind is queued
}

// Path returns the path given to WatchFile (EventMachine's path), even
// after the file has been moved.
func (w *FileWatch) Path() string { return w.path }

// Name returns, during a callback about an entry of a watched directory,
// that entry's name (relative to the directory, no slash); "" during a
// callback about the watched file or directory itself, and outside
// callbacks. Call only from the loop goroutine.
func (w *FileWatch) Name() string { return w.name }

// ErrFileEventsLost is reported to Options.ErrorHandler when the kernel's
// queue of file events (Loop.WatchFile) overflowed (IN_Q_OVERFLOW; its
// length is /proc/sys/fs/inotify/max_queued_events): changes happened
// that no watch heard of. The watches go on.
var ErrFileEventsLost = errors.New("loop: file events lost: inotify queue overflow")
