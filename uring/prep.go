package uring

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Prep methods fill an SQE the way liburing's io_uring_prep_* functions do: every field
// except UserData is overwritten (flags included), so call the setters after them.
//
// Methods that store an address carry a "Memory:" paragraph. The kernel reads or writes
// that memory after the method returns, up to the operation's final CQE, so the caller must
// keep it reachable (and, for Go-heap memory, pinned with a runtime.Pinner) until then, even
// if the operation is cancelled. Memory outside the Go heap (a mapping) needs no pin. The
// Prep methods force their pointer arguments to escape to the heap, so a buffer declared
// as a local never stays on a goroutine stack, which moves when it grows.

// escapeSink makes every address a Prep method stores escape to the heap: the compiler
// cannot see through the uintptr in the SQE, and would otherwise leave a caller's buffer
// on its goroutine stack, which moves when the stack grows while the kernel still holds
// the old address. The branch is never taken at run time.
var escapeSink struct {
	never bool
	p     unsafe.Pointer
}

// escape forces p to the heap (see escapeSink).
func escape(p unsafe.Pointer) {
	if escapeSink.never {
		escapeSink.p = p
	}
}

// bigEndian is true on big-endian CPUs, where poll32_events is stored word-swapped.
var bigEndian = binary.NativeEndian.Uint16([]byte{0, 1}) == 1

// prepRW mirrors liburing's io_uring_prep_rw.
func (s *SQE) prepRW(op Op, fd int, addr uint64, n uint32, off uint64) {
	*s = SQE{Opcode: op, FD: int32(fd), Addr: addr, Len: n, Off: off, UserData: s.UserData}
}

// bufAddr returns the address of b's first byte, 0 for an empty slice.
func bufAddr(b []byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	// Memory: b is forced to the heap (escape); each caller documents that it must stay
	// reachable and pinned until the final CQE.
	p := unsafe.Pointer(unsafe.SliceData(b))
	escape(p)
	return uint64(uintptr(p))
}

// PrepNop prepares a no-op (liburing io_uring_prep_nop; IORING_OP_NOP, Linux 5.1). Its CQE
// has Res 0.
func (s *SQE) PrepNop() {
	s.prepRW(OpNop, -1, 0, 0, 0)
}

// PrepTimeout prepares a timeout that completes after ts, or once count other CQEs have
// been posted if count > 0 (liburing io_uring_prep_timeout; IORING_OP_TIMEOUT, Linux 5.4).
// It completes with -ETIME when the time elapses, 0 when count was reached, -ECANCELED
// when removed.
//
// Memory: ts must stay valid until the CQE; the kernel copies it at submission on
// current kernels, but liburing's contract (and older kernels) need it until then.
func (s *SQE) PrepTimeout(ts *Timespec, count uint32, flags TimeoutFlags) {
	escape(unsafe.Pointer(ts))
	// Memory: ts is on the heap (escape) and caller-owned; see the doc comment.
	s.prepRW(OpTimeout, -1, uint64(uintptr(unsafe.Pointer(ts))), 1, uint64(count))
	s.OpFlags = uint32(flags)
}

// PrepTimeoutRemove prepares the removal (or, with TimeoutUpdate, the update) of the
// timeout submitted with userData (liburing io_uring_prep_timeout_remove;
// IORING_OP_TIMEOUT_REMOVE, Linux 5.5). Res is 0, -ENOENT if not found, or -EALREADY.
func (s *SQE) PrepTimeoutRemove(userData uint64, flags TimeoutFlags) {
	s.prepRW(OpTimeoutRemove, -1, userData, 0, 0)
	s.OpFlags = uint32(flags)
}

// PrepTimeoutUpdate prepares a change of the expiry of the timeout submitted with userData
// to ts (liburing io_uring_prep_timeout_update; IORING_OP_TIMEOUT_REMOVE with
// IORING_TIMEOUT_UPDATE, Linux 5.11). Pass TimeoutLinkTimeoutUpdate in flags to update a
// linked timeout (Linux 5.15); TimeoutUpdate is always set. Without TimeoutAbs ts is
// relative to now. Res is 0, -ENOENT if no such timeout is armed, or -EALREADY.
//
// Memory: ts must stay valid until the CQE (see PrepTimeout).
func (s *SQE) PrepTimeoutUpdate(ts *Timespec, userData uint64, flags TimeoutFlags) {
	escape(unsafe.Pointer(ts))
	// Memory: ts is on the heap (escape) and caller-owned; see the doc comment.
	s.prepRW(OpTimeoutRemove, -1, userData, 0, uint64(uintptr(unsafe.Pointer(ts))))
	// TIMEOUT_REMOVE without IORING_TIMEOUT_UPDATE removes, even for a linked timeout.
	s.OpFlags = uint32(flags | TimeoutUpdate)
}

// PrepLinkTimeout prepares a timeout for the previous SQE, which must carry IOSQE_IO_LINK
// (liburing io_uring_prep_link_timeout; IORING_OP_LINK_TIMEOUT, Linux 5.5). If it fires the
// linked operation completes with -ECANCELED and this one with -ETIME; otherwise this one
// completes with -ECANCELED (or -EALREADY).
//
// Memory: ts must stay valid until this SQE's CQE (see PrepTimeout).
func (s *SQE) PrepLinkTimeout(ts *Timespec, flags TimeoutFlags) {
	escape(unsafe.Pointer(ts))
	// Memory: ts is on the heap (escape) and caller-owned; see the doc comment.
	s.prepRW(OpLinkTimeout, -1, uint64(uintptr(unsafe.Pointer(ts))), 1, 0)
	s.OpFlags = uint32(flags)
}

// PrepCancel prepares the cancellation of the operation submitted with userData (liburing
// io_uring_prep_cancel64; IORING_OP_ASYNC_CANCEL, Linux 5.5). With CancelAll every match
// is cancelled and Res counts them; with CancelAny, userData is ignored and any request
// matches (Linux 5.19). Res is 0 (or the count), -ENOENT or -EALREADY.
func (s *SQE) PrepCancel(userData uint64, flags CancelFlags) {
	s.prepRW(OpAsyncCancel, -1, userData, 0, 0)
	s.OpFlags = uint32(flags)
}

// PrepCancelFD prepares the cancellation of operations on fd (liburing
// io_uring_prep_cancel_fd; IORING_OP_ASYNC_CANCEL with IORING_ASYNC_CANCEL_FD, Linux 5.19).
// Add CancelAll to cancel every one of them; Res is then their count.
func (s *SQE) PrepCancelFD(fd int, flags CancelFlags) {
	s.prepRW(OpAsyncCancel, fd, 0, 0, 0)
	s.OpFlags = uint32(flags | CancelFD)
}

// pollMask stores mask in poll32_events, word-swapped on big-endian CPUs as liburing's
// __io_uring_prep_poll_mask does.
func pollMask(mask uint32) uint32 {
	if bigEndian {
		return mask<<16 | mask>>16
	}
	return mask
}

// PrepPollAdd prepares a one-shot poll for the events in mask (unix.POLLIN, ...) on fd
// (liburing io_uring_prep_poll_add; IORING_OP_POLL_ADD, Linux 5.1). Res is the ready mask.
func (s *SQE) PrepPollAdd(fd int, mask uint32) {
	s.prepRW(OpPollAdd, fd, 0, 0, 0)
	s.OpFlags = pollMask(mask)
}

// PrepPollMultishot prepares a multishot poll (liburing io_uring_prep_poll_multishot;
// IORING_OP_POLL_ADD with IORING_POLL_ADD_MULTI, Linux 5.13): one CQE with
// IORING_CQE_F_MORE per readiness event until cancelled or failed.
func (s *SQE) PrepPollMultishot(fd int, mask uint32) {
	s.PrepPollAdd(fd, mask)
	s.Len = PollAddMulti
}

// PrepPollRemove prepares the removal of the poll submitted with userData (liburing
// io_uring_prep_poll_remove; IORING_OP_POLL_REMOVE, Linux 5.1).
func (s *SQE) PrepPollRemove(userData uint64) {
	s.prepRW(OpPollRemove, -1, userData, 0, 0)
}

// PrepRead prepares a read of up to len(buf) bytes from fd at offset, or at the file
// position if offset is ^uint64(0) (liburing io_uring_prep_read; IORING_OP_READ, Linux 5.6).
// Res is the byte count.
//
// Memory: the kernel writes into buf until the CQE; keep it reachable and pinned until then.
func (s *SQE) PrepRead(fd int, buf []byte, offset uint64) {
	s.prepRW(OpRead, fd, bufAddr(buf), uint32(len(buf)), offset)
}

// PrepWrite prepares a write of buf to fd at offset, or at the file position if offset is
// ^uint64(0) (liburing io_uring_prep_write; IORING_OP_WRITE, Linux 5.6).
//
// Memory: the kernel reads buf until the CQE; keep it reachable, pinned and unmodified.
func (s *SQE) PrepWrite(fd int, buf []byte, offset uint64) {
	s.prepRW(OpWrite, fd, bufAddr(buf), uint32(len(buf)), offset)
}

// PrepAccept prepares an accept on the listening socket fd, with accept4(2) flags
// (unix.SOCK_NONBLOCK, unix.SOCK_CLOEXEC) (liburing io_uring_prep_accept with a nil
// address; IORING_OP_ACCEPT, Linux 5.5). Res is the new fd; get the peer's address with
// getpeername(2).
func (s *SQE) PrepAccept(fd int, flags int) {
	s.prepRW(OpAccept, fd, 0, 0, 0)
	s.OpFlags = uint32(flags)
}

// PrepAcceptMultishot prepares a multishot accept (liburing
// io_uring_prep_multishot_accept; IORING_OP_ACCEPT with IORING_ACCEPT_MULTISHOT, Linux
// 5.19): one CQE with IORING_CQE_F_MORE per accepted connection until cancelled or failed.
func (s *SQE) PrepAcceptMultishot(fd int, flags int) {
	s.PrepAccept(fd, flags)
	s.IOPrio |= AcceptMultishot
}

// PrepConnect prepares a connect of socket fd to sa (liburing io_uring_prep_connect;
// IORING_OP_CONNECT, Linux 5.5). Res is 0 or -errno (-ECONNREFUSED, ...).
//
// Memory: the kernel reads *sa until the CQE; keep it reachable and pinned until then.
func (s *SQE) PrepConnect(fd int, sa *Sockaddr) {
	escape(unsafe.Pointer(sa))
	// Memory: sa is on the heap (escape) and caller-owned; see the doc comment.
	s.prepRW(OpConnect, fd, uint64(uintptr(unsafe.Pointer(&sa.raw))), 0, uint64(sa.n))
}

// PrepRecv prepares a receive of up to len(buf) bytes with recv(2) flags (liburing
// io_uring_prep_recv; IORING_OP_RECV, Linux 5.6). Res is the byte count, 0 at EOF.
//
// Memory: the kernel writes into buf until the CQE; keep it reachable and pinned until then.
func (s *SQE) PrepRecv(fd int, buf []byte, flags int) {
	s.prepRW(OpRecv, fd, bufAddr(buf), uint32(len(buf)), 0)
	s.OpFlags = uint32(flags)
}

// PrepRecvMultishot prepares a multishot receive into provided buffers (liburing
// io_uring_prep_recv_multishot; IORING_OP_RECV with IORING_RECV_MULTISHOT, Linux 6.0). It
// sets IOSQE_BUFFER_SELECT; choose the buffer group with [SQE.SetBufGroup]. Each CQE
// carries a buffer ID ([CQE.BufferID]) and IORING_CQE_F_MORE while the receive stays
// armed; it ends (no F_MORE) at EOF (Res 0), on error, or with -ENOBUFS when the group ran
// out of buffers, after which the caller recycles buffers and submits it again.
//
// Kernel note: when the peer's last bytes and its reset (or, on AF_UNIX, its close) are
// both pending as the receive's poll is armed, Linux 6.18.44 delivers the bytes with F_MORE
// and then never ends the receive (TestRecvMultishotArmedAfterDataAndReset). A caller
// that must see every peer go polls the socket after the first CQE and, if the peer is
// gone, cancels the receive and submits a new one, which reports the end.
//
// Memory: none from the caller; the data lands in the buffer ring's mapping.
func (s *SQE) PrepRecvMultishot(fd int, flags int) {
	s.prepRW(OpRecv, fd, 0, 0, 0)
	s.OpFlags = uint32(flags)
	s.IOPrio |= RecvMultishot
	s.Flags |= SQEBufferSelect
}

// PrepSend prepares a send of buf with send(2) flags (liburing io_uring_prep_send;
// IORING_OP_SEND, Linux 5.6). Res is the byte count, which may be short.
//
// Memory: the kernel reads buf until the CQE; keep it reachable, pinned and unmodified.
func (s *SQE) PrepSend(fd int, buf []byte, flags int) {
	s.prepRW(OpSend, fd, bufAddr(buf), uint32(len(buf)), 0)
	s.OpFlags = uint32(flags)
}

// PrepSendmsg prepares a sendmsg(2) (liburing io_uring_prep_sendmsg; IORING_OP_SENDMSG,
// Linux 5.3).
//
// Memory: the kernel reads *msg, its iovec array, every buffer they point to, and its name
// and control buffers until the CQE; keep all of them reachable, pinned and unmodified.
func (s *SQE) PrepSendmsg(fd int, msg *unix.Msghdr, flags int) {
	escape(unsafe.Pointer(msg))
	// Memory: msg is on the heap (escape) and caller-owned; see the doc comment.
	s.prepRW(OpSendmsg, fd, uint64(uintptr(unsafe.Pointer(msg))), 1, 0)
	s.OpFlags = uint32(flags)
}

// PrepSendZC prepares a zero-copy send (liburing io_uring_prep_send_zc; IORING_OP_SEND_ZC,
// Linux 6.0) with send(2) flags and zcFlags in ioprio (RecvsendPollFirst,
// SendZCReportUsage). It posts two CQEs: the result, with IORING_CQE_F_MORE, then a
// notification ([CQE.Notif]) once the kernel no longer reads buf. Sockets that cannot
// zero-copy (AF_UNIX) fail with -EOPNOTSUPP.
//
// Memory: the kernel reads buf until the notification CQE (not the first one); keep it
// reachable, pinned and unmodified until then.
func (s *SQE) PrepSendZC(fd int, buf []byte, flags int, zcFlags uint16) {
	s.prepRW(OpSendZC, fd, bufAddr(buf), uint32(len(buf)), 0)
	s.OpFlags = uint32(flags)
	s.IOPrio = zcFlags
}

// PrepSendZCFixed is [SQE.PrepSendZC] from a registered buffer (liburing
// io_uring_prep_send_zc_fixed; IORING_RECVSEND_FIXED_BUF, Linux 6.0): buf lies in the
// buffer of slot index ([Ring.UpdateBuffer]), whose pages the kernel pinned once, so the
// send maps no pages of its own. A buf outside that buffer fails with -EFAULT.
//
// Memory: as PrepSendZC; the slot's registration keeps the pages pinned, and buf must
// not be modified until the notification CQE.
func (s *SQE) PrepSendZCFixed(fd int, buf []byte, flags int, zcFlags uint16, index uint16) {
	s.PrepSendZC(fd, buf, flags, zcFlags|RecvsendFixedBuf)
	s.BufIndex = index
}

// PrepSendmsgZC prepares a zero-copy sendmsg(2) (liburing io_uring_prep_sendmsg_zc;
// IORING_OP_SENDMSG_ZC, Linux 6.1). Like [SQE.PrepSendZC] it posts the result with
// IORING_CQE_F_MORE, then a notification ([CQE.Notif]) once the kernel no longer reads the
// buffers. Sockets that cannot zero-copy (AF_UNIX) fail with -EOPNOTSUPP.
//
// Memory: the kernel reads *msg and its iovec array until the first CQE and every buffer
// they point to until the notification CQE; keep all of them reachable, pinned and
// unmodified until then.
func (s *SQE) PrepSendmsgZC(fd int, msg *unix.Msghdr, flags int) {
	escape(unsafe.Pointer(msg))
	// Memory: msg is on the heap (escape) and caller-owned; see the doc comment.
	s.prepRW(OpSendmsgZC, fd, uint64(uintptr(unsafe.Pointer(msg))), 1, 0)
	s.OpFlags = uint32(flags)
}

// PrepWritev prepares a writev(2) at offset, or at the file position if offset is
// ^uint64(0) (liburing io_uring_prep_writev; IORING_OP_WRITEV, Linux 5.1).
//
// Memory: the kernel reads iovecs and every buffer they point to until the CQE (current
// kernels copy the iovec array at submission, the buffers not); keep them all reachable,
// pinned and unmodified until then.
func (s *SQE) PrepWritev(fd int, iovecs []unix.Iovec, offset uint64) {
	var addr uint64
	if len(iovecs) > 0 {
		// Memory: iovecs is forced to the heap (escape) and caller-owned; see the doc comment.
		p := unsafe.Pointer(unsafe.SliceData(iovecs))
		escape(p)
		addr = uint64(uintptr(p))
	}
	s.prepRW(OpWritev, fd, addr, uint32(len(iovecs)), offset)
}

// SpliceFDInFixed is SPLICE_F_FD_IN_FIXED, a flag of PrepSplice (Linux 5.7): fdIn is an
// index into the registered files (IOSQE_FIXED_FILE names fdOut only).
const SpliceFDInFixed uint32 = 1 << 31

// PrepSplice prepares a splice(2) of n bytes from fdIn at offIn to fdOut at offOut
// (liburing io_uring_prep_splice; IORING_OP_SPLICE, Linux 5.7). An offset of -1 means "no
// offset" (required for pipes). flags are SPLICE_F_* values, and SpliceFDInFixed.
func (s *SQE) PrepSplice(fdIn int, offIn int64, fdOut int, offOut int64, n uint32, flags uint32) {
	s.prepRW(OpSplice, fdOut, uint64(offIn), n, uint64(offOut))
	s.SpliceFDIn = int32(fdIn)
	s.OpFlags = flags
}

// PrepShutdown prepares a shutdown(2) with how (unix.SHUT_WR, ...) (liburing
// io_uring_prep_shutdown; IORING_OP_SHUTDOWN, Linux 5.11). The kernel always runs
// it on an io-wq worker thread, and with SQEFixedFile the worker looks the slot up
// only then: an SQE submitted after it, a close of that slot say, can run first.
func (s *SQE) PrepShutdown(fd, how int) {
	s.prepRW(OpShutdown, fd, 0, uint32(how), 0)
}

// PrepClose prepares a close(2) of fd (liburing io_uring_prep_close; IORING_OP_CLOSE,
// Linux 5.6). As with close(2), fd is released even if Res reports an error.
func (s *SQE) PrepClose(fd int) {
	s.prepRW(OpClose, fd, 0, 0, 0)
}

// PrepMsgRing prepares a message to the ring whose fd is fd (liburing
// io_uring_prep_msg_ring; IORING_OP_MSG_RING, Linux 5.18): the target ring gets a CQE with
// UserData data and Res length, flags MsgRingCQESkip or MsgRingFlagsPass. On this ring Res
// is 0 or -errno. A target set up with DEFER_TASKRUN sees the CQE only after it enters the
// kernel to wait (see [Ring.SubmitAndWait]).
func (s *SQE) PrepMsgRing(fd int, length uint32, data uint64, flags uint32) {
	s.prepRW(OpMsgRing, fd, msgData, length, data)
	s.OpFlags = flags
}

// PrepAcceptMultishotDirect is PrepAcceptMultishot whose connections become direct
// descriptors (liburing io_uring_prep_multishot_accept_direct; Linux 5.19): each lands
// in a free slot of the ring's registered file table, and Res is that slot, not a
// process fd. flags may hold SOCK_NONBLOCK; the kernel refuses SOCK_CLOEXEC here (a
// direct descriptor is in no process table to close on exec).
func (s *SQE) PrepAcceptMultishotDirect(fd int, flags int) {
	s.PrepAcceptMultishot(fd, flags)
	s.SpliceFDIn = -1 // FileIndexAlloc
}

// PrepAcceptDirect is PrepAccept into a free slot of the registered file table
// (liburing io_uring_prep_accept_direct with IORING_FILE_INDEX_ALLOC; Linux 5.19): Res
// is the slot. The kernel takes the connection off the listen queue before it looks for
// a slot, so with the table full the connection is closed (its peer sees a reset) and
// Res is -ENFILE: submit it only while a slot is free.
func (s *SQE) PrepAcceptDirect(fd int, flags int) {
	s.PrepAccept(fd, flags)
	s.SpliceFDIn = -1 // FileIndexAlloc
}

// PrepCloseDirect prepares the close of the direct descriptor in slot index of the
// registered file table (liburing io_uring_prep_close_direct; Linux 5.15). The slot is
// free for reuse once the CQE is posted.
func (s *SQE) PrepCloseDirect(index uint32) {
	s.prepRW(OpClose, 0, 0, 0, 0)
	s.SpliceFDIn = int32(index + 1)
}

// PrepFixedFDInstall prepares the installation of the direct descriptor in slot index
// into the process's descriptor table (liburing io_uring_prep_fixed_fd_install;
// IORING_OP_FIXED_FD_INSTALL, Linux 6.8): Res is the new fd, close-on-exec unless flags
// has FixedFDNoCloexec. The direct descriptor stays in its slot.
func (s *SQE) PrepFixedFDInstall(index int, flags uint32) {
	s.prepRW(OpFixedFDInstall, index, 0, 0, 0)
	s.Flags = SQEFixedFile
	s.OpFlags = flags
}

// PrepSetsockoptInt prepares setsockopt(fd, level, name, *val, 4) as a socket command
// (liburing io_uring_prep_cmd_sock with SOCKET_URING_OP_SETSOCKOPT;
// IORING_OP_URING_CMD, Linux 6.7), which works on direct descriptors (add
// IOSQE_FIXED_FILE with SetFlags).
//
// Memory: the kernel reads *val when it issues the command, which may be after
// submission (from an io-wq worker): keep val reachable and pinned until the CQE.
func (s *SQE) PrepSetsockoptInt(fd int, level, name int, val *int32) {
	s.prepRW(OpURingCmd, fd, uint64(uint32(level))|uint64(uint32(name))<<32, 0, uint64(SocketCmdSetsockopt))
	s.SpliceFDIn = 4 // optlen
	s.Addr3 = uint64(uintptr(unsafe.Pointer(val)))
	escape(unsafe.Pointer(val))
}

// PrepMsgRingFD prepares the move of the direct descriptor in slot srcIndex of this
// ring's file table to the ring whose fd is ringFD (liburing io_uring_prep_msg_ring_fd_alloc
// with IORING_MSG_SEND_FD; Linux 6.0): the target gets it in a free slot of its own
// table (FileIndexAlloc) and a CQE with UserData data and Res = that slot. On this ring
// Res is the target's slot too, or -errno; the source slot keeps its descriptor (close
// it). -EOVERFLOW: the target got the descriptor but not its CQE.
func (s *SQE) PrepMsgRingFD(ringFD int, srcIndex uint32, data uint64, flags uint32) {
	s.prepRW(OpMsgRing, ringFD, msgSendFD, 0, data)
	s.Addr3 = uint64(srcIndex)
	s.SpliceFDIn = -1 // FileIndexAlloc
	s.OpFlags = flags
}

// PrepSocketDirect prepares socket(domain, typ, proto) as a direct descriptor in a free
// slot of the registered file table (liburing io_uring_prep_socket_direct_alloc;
// IORING_OP_SOCKET, Linux 5.19): Res is the slot.
func (s *SQE) PrepSocketDirect(domain, typ, proto int) {
	s.prepRW(OpSocket, domain, 0, uint32(proto), uint64(typ))
	s.SpliceFDIn = -1 // FileIndexAlloc
}

// PrepRecvmsg prepares a recvmsg(2) of one message into msg (liburing io_uring_prep_recvmsg;
// IORING_OP_RECVMSG, Linux 5.3) with recv flags: Res = bytes received; the kernel sets
// msg's Namelen to the sender's address length (see [Sockaddr.Storage]) and its Flags
// (MSG_TRUNC for a datagram longer than the buffers).
//
// Memory: the kernel reads msg and writes the buffers and the name it points to until
// the CQE; keep them all reachable and pinned until then.
func (s *SQE) PrepRecvmsg(fd int, msg *unix.Msghdr, flags int) {
	escape(unsafe.Pointer(msg))
	// Memory: msg is on the heap (escape) and caller-owned; see the doc comment.
	s.prepRW(OpRecvmsg, fd, uint64(uintptr(unsafe.Pointer(msg))), 1, 0)
	s.OpFlags = uint32(flags)
}

// PrepFilesUpdateAlloc prepares the registration of the process fds in fds into free
// slots of the registered file table (liburing io_uring_prep_files_update with
// IORING_FILE_INDEX_ALLOC; IORING_OP_FILES_UPDATE, Linux 5.19): Res = how many were
// registered, and the kernel overwrites each registered entry of fds with its slot. The
// table takes its own reference: the process fds stay open (close them).
//
// Memory: the kernel reads and writes fds until the CQE; keep it reachable and pinned.
func (s *SQE) PrepFilesUpdateAlloc(fds []int32) {
	var addr uint64
	if len(fds) > 0 {
		p := unsafe.Pointer(&fds[0])
		escape(p)
		addr = uint64(uintptr(p))
	}
	s.prepRW(OpFilesUpdate, -1, addr, uint32(len(fds)), uint64(FileIndexAlloc))
}
