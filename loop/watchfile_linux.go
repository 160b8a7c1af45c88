package loop

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"slices"

	"golang.org/x/sys/unix"
)

// File watches (WatchFile) share one inotify instance per loop, made by
// the first watch and closed when the last one ends or the loop stops.
// Its descriptor is a socket record of kind sockInotify, so it is read,
// cancelled and closed like any other: armInotify submits one read of its
// events into ino.buf (IORING_OP_READ on io_uring, where the ring waits for
// events and the loop makes no system call; read(2) on readiness on
// epoll), and onInotifyReady hands what it read to handleInotifyEvents and
// reads again.
//
// The kernel gives two watches of one inode (one path watched twice, or
// two hard links) the same watch descriptor: the watches of a descriptor
// are kept together (inotifyWD), and the kernel's watch is removed only
// when the last of them stops. All are added with the same mask, so a
// second inotify_add_watch changes nothing for the first.

// inotifyMask is what every watch asks for: EventMachine's set
// (IN_MODIFY | IN_CREATE | IN_DELETE | IN_MOVE | IN_MOVE_SELF |
// IN_DELETE_SELF) and IN_ATTRIB, for FileAttributeWatcher.
const inotifyMask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_CREATE | unix.IN_DELETE |
	unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_MOVE_SELF | unix.IN_DELETE_SELF

// inotifyModified are the events FileModified reports.
const inotifyModified = unix.IN_MODIFY | unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO

// inotifyState is the loop's inotify instance.
type inotifyState struct {
	s      *sock // the instance's descriptor (sockInotify)
	wds    map[int32]*inotifyWD
	buf    []byte // the events of one read
	armed  bool   // a read is in flight
	closed bool   // closeInotify ran: no more events are read or delivered
}

// inotifyWD is one watch descriptor of the instance and the watches on it.
// ws is copied on removal, never changed in place, so a delivery can range
// over the slice it read while callbacks stop watches.
type inotifyWD struct {
	ws []*FileWatch
}

// WatchFile watches the file or directory at path (EventMachine's
// EM.watch_file): h hears, on the loop goroutine, when it is modified
// (FileModified), moved (FileMoved) or deleted (FileDeleted, then Unbind),
// and a directory's h also when an entry is created, modified, deleted or
// moved in or out (FileModified; FileWatch.Name names the entry). A
// FileWatcher that is also a FileAttributeWatcher hears of metadata changes
// too. The watch ends, with Unbind once, after FileDeleted, with
// FileWatch.Stop, or when the loop stops.
//
// The watch is on the inode path names when WatchFile is called, as
// inotify(7) watches are: after a rename it follows the file to its new
// name (FileMoved, and FileWatch.Path still returns path), and a file
// created later at path is not watched. A symbolic link at path is
// followed. The kernel merges identical events that follow each other
// unread, so several writes may make one FileModified; events are not
// tied to a watch's start, so a change made just before WatchFile returned
// can still be reported when another watch of the same file exists.
//
// All watches of a loop share one inotify instance (inotify_init1(2),
// Linux 2.6.27), the loop's first WatchFile makes it and it is closed when
// the last watch ends; it counts against /proc/sys/fs/inotify/
// max_user_instances (128 by default) and each watched inode against
// max_user_watches.
//
// Errors: an *fs.PathError from inotify_add_watch(2), wrapped, so that
// errors.Is(err, fs.ErrNotExist) holds for a path that does not exist
// (fs.ErrPermission when it cannot be read; ENOSPC when the user's watches
// are all used); inotify_init1's error, wrapped (EMFILE when the user's
// instances are all used); ErrNilFunc for a nil h; ErrLoopStopped when
// the loop is not running. After an error h is never called. Call only
// from the loop goroutine.
func (l *Loop) WatchFile(path string, h FileWatcher) (*FileWatch, error) {
	if h == nil {
		return nil, ErrNilFunc
	}
	if !l.running.Load() || l.stopping || l.be == nil {
		return nil, ErrLoopStopped
	}
	ino, err := l.inotify()
	if err != nil {
		return nil, fmt.Errorf("loop: WatchFile %s: %w", path, err)
	}
	wd, err := unix.InotifyAddWatch(ino.s.fd, path, inotifyMask)
	if err != nil {
		l.maybeCloseInotify(ino)
		return nil, fmt.Errorf("loop: WatchFile: %w", &fs.PathError{Op: "inotify_add_watch", Path: path, Err: err})
	}
	w := &FileWatch{l: l, ino: ino, wd: int32(wd), path: path, h: h}
	iw := ino.wds[w.wd]
	if iw == nil {
		iw = new(inotifyWD)
		ino.wds[w.wd] = iw
	}
	iw.ws = append(iw.ws, w)
	return w, nil
}

// Stop ends the watch (EventMachine's stop_watching): no more calls but
// Unbind, which runs once, after the callback that called Stop returns
// (in the loop's close step), never inside Stop. Other watches of the same
// file go on. After the watch has ended, or a second time, Stop does
// nothing. Call only from the loop goroutine.
func (w *FileWatch) Stop() {
	if w.ended {
		return
	}
	ino := w.ino
	iw := ino.wds[w.wd]
	if iw != nil {
		iw.ws = slices.DeleteFunc(slices.Clone(iw.ws), func(o *FileWatch) bool { return o == w })
	}
	w.l.endFileWatch(w)
	if iw == nil || len(iw.ws) > 0 {
		return
	}
	delete(ino.wds, w.wd)
	if len(ino.wds) == 0 {
		w.l.maybeCloseInotify(ino) // closing the instance removes its watches
		return
	}
	// EINVAL: the kernel has removed the watch already (its IN_IGNORED is
	// queued), which is what was asked.
	_, _ = unix.InotifyRmWatch(ino.s.fd, uint32(w.wd))
}

// inotify returns the loop's inotify instance, making it and arming its
// read if there is none.
func (l *Loop) inotify() (*inotifyState, error) {
	if ino := l.net.ino; ino != nil {
		return ino, nil
	}
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("inotify_init1", err)
	}
	ino := &inotifyState{
		s:   l.newSock(sockInotify, fd, "inotify"),
		wds: make(map[int32]*inotifyWD),
		// At least one event of the longest name (NAME_MAX), as read(2)
		// fails with EINVAL on a buffer that cannot hold the next event.
		buf: make([]byte, 4096),
	}
	l.net.ino = ino
	if err := l.armInotify(ino); err != nil {
		l.closeInotify(ino)
		return nil, err
	}
	return ino, nil
}

// armInotify submits a read of the instance's events into ino.buf, which
// the engine owns until its completion: IORING_OP_READ on io_uring (the
// ring waits for events, no system call of ours), read(2) on readiness on
// epoll.
func (l *Loop) armInotify(ino *inotifyState) error {
	if ino.armed || ino.closed {
		return nil
	}
	if err := l.be.read(ino.s.fd, ino.buf, ino.s.tok(opPoll)); err != nil {
		return err
	}
	ino.s.ops++
	ino.armed = true
	return nil
}

// onInotifyReady handles the read of the inotify descriptor: it delivers
// the events read, and reads again.
func (l *Loop) onInotifyReady(s *sock, c *completion) {
	ino := l.net.ino
	if ino == nil || ino.s != s || ino.closed {
		return // an instance closed since: its watches have ended
	}
	ino.armed = false
	switch {
	case errRetry(c.Res) || c.Res == -int32(unix.EINTR):
	case c.Res < 0:
		l.report(fmt.Errorf("loop: WatchFile: read: %w", errnoOf(c.Res)))
		l.closeInotify(ino)
		return
	default:
		l.handleInotifyEvents(ino, ino.buf[:c.Res])
		if ino.closed {
			return
		}
	}
	if err := l.armInotify(ino); err != nil {
		l.report(fmt.Errorf("loop: WatchFile: read: %w", err))
		l.closeInotify(ino)
	}
}

// inotifyEvent is one struct inotify_event as read(2) returns it.
type inotifyEvent struct {
	wd   int32
	mask uint32
	name string // an entry of a watched directory; "" for the watched file itself
}

// errInotifyShort is a read that ends inside an event: the kernel never
// returns one, and the rest of such a buffer is dropped.
var errInotifyShort = errors.New("loop: WatchFile: short inotify event")

// nextInotifyEvent decodes the event at the start of b and returns it with
// the bytes after it. The name field is len bytes, NUL-padded.
func nextInotifyEvent(b []byte) (ev inotifyEvent, rest []byte, err error) {
	if len(b) < unix.SizeofInotifyEvent {
		return ev, nil, errInotifyShort
	}
	ev.wd = int32(binary.NativeEndian.Uint32(b[0:]))
	ev.mask = binary.NativeEndian.Uint32(b[4:])
	n := binary.NativeEndian.Uint32(b[12:])
	b = b[unix.SizeofInotifyEvent:]
	if uint64(n) > uint64(len(b)) {
		return ev, nil, errInotifyShort
	}
	name := b[:n]
	if i := slices.Index(name, 0); i >= 0 {
		name = name[:i]
	}
	ev.name = string(name)
	return ev, b[n:], nil
}

// handleInotifyEvents delivers the events read into b.
func (l *Loop) handleInotifyEvents(ino *inotifyState, b []byte) {
	for len(b) > 0 && !ino.closed {
		ev, rest, err := nextInotifyEvent(b)
		if err != nil {
			l.report(err)
			return
		}
		b = rest
		l.deliverInotifyEvent(ino, ev)
	}
}

// deliverInotifyEvent calls the watchers of ev's watch descriptor, in
// EventMachine's order for one event: modified, moved, deleted.
func (l *Loop) deliverInotifyEvent(ino *inotifyState, ev inotifyEvent) {
	if ev.mask&unix.IN_Q_OVERFLOW != 0 {
		l.report(ErrFileEventsLost)
		return
	}
	iw := ino.wds[ev.wd]
	if iw == nil {
		return // stopped, or an IN_IGNORED after FileDeleted or Stop
	}
	if ev.mask&inotifyModified != 0 {
		l.callFileWatchers(iw.ws, ev.name, FileWatcher.FileModified)
	}
	if ev.mask&unix.IN_ATTRIB != 0 {
		l.callFileWatchers(iw.ws, ev.name, func(h FileWatcher, w *FileWatch) {
			if a, ok := h.(FileAttributeWatcher); ok {
				a.FileAttributesChanged(w)
			}
		})
	}
	if ev.mask&unix.IN_MOVE_SELF != 0 {
		l.callFileWatchers(iw.ws, "", FileWatcher.FileMoved)
	}
	if ev.mask&unix.IN_DELETE_SELF != 0 {
		l.callFileWatchers(iw.ws, "", FileWatcher.FileDeleted)
	}
	if ev.mask&(unix.IN_DELETE_SELF|unix.IN_IGNORED) != 0 && ino.wds[ev.wd] == iw {
		// The kernel removes its watch after IN_DELETE_SELF itself (its
		// IN_IGNORED follows): no inotify_rm_watch.
		delete(ino.wds, ev.wd)
		for _, w := range iw.ws {
			l.endFileWatch(w)
		}
		l.maybeCloseInotify(ino)
	}
}

// callFileWatchers calls fn for each watch of ws that has not ended, with
// Name returning name meanwhile. A callback may stop any watch; ws, copied
// on change (inotifyWD), stays as it was.
func (l *Loop) callFileWatchers(ws []*FileWatch, name string, fn func(FileWatcher, *FileWatch)) {
	for _, w := range ws {
		if w.ended {
			continue
		}
		w.name = name
		l.call(func() { fn(w.h, w) })
		w.name = ""
	}
}

// endFileWatch ends w and queues its Unbind for runCloses.
func (l *Loop) endFileWatch(w *FileWatch) {
	if w.ended {
		return
	}
	w.ended = true
	l.net.fileUnbinds = append(l.net.fileUnbinds, w)
}

// runFileUnbinds calls the Unbind of the file watches that ended during
// the phase that just ended (part of runCloses), each once.
func (l *Loop) runFileUnbinds() {
	n := &l.net
	for i := 0; i < len(n.fileUnbinds); i++ { // Unbind may end more
		w := n.fileUnbinds[i]
		n.fileUnbinds[i] = nil
		l.call(func() { w.h.Unbind(w) })
	}
	n.fileUnbinds = n.fileUnbinds[:0]
}

// maybeCloseInotify closes the instance once no watch is left on it.
func (l *Loop) maybeCloseInotify(ino *inotifyState) {
	if len(ino.wds) == 0 {
		l.closeInotify(ino)
	}
}

// closeInotify closes the instance: every watch left on it ends (Unbind
// queued), and the descriptor is closed once its read is reaped.
func (l *Loop) closeInotify(ino *inotifyState) {
	if ino.closed {
		return
	}
	ino.closed = true
	if l.net.ino == ino {
		l.net.ino = nil
	}
	for _, wd := range slices.Sorted(maps.Keys(ino.wds)) { // about the order they were made in
		for _, w := range ino.wds[wd].ws {
			l.endFileWatch(w)
		}
	}
	clear(ino.wds)
	l.closeSock(ino.s, nil)
}

// inotifyClosed is closeSock's step for an inotify descriptor closed from
// outside this file (the loop's stop): its watches end.
func (l *Loop) inotifyClosed(s *sock) {
	if ino := l.net.ino; ino != nil && ino.s == s {
		l.closeInotify(ino)
	}
}
