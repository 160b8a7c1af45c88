package uring

// This file mirrors the kernel's io_uring UAPI (include/uapi/linux/io_uring.h): struct
// layouts the kernel reads or writes, and the constants that go into them. Layouts are
// checked by abi_test.go (and against giouring by giouring_test.go).

// SQE is struct io_uring_sqe, one 64-byte submission queue entry.
//
// Obtain one with [Ring.GetSQE] (which zeroes it), fill it with a Prep method and the
// setters, then [Ring.Submit]. Fields are exported for operations without a Prep helper;
// the unions of the C struct are named after their most common member.
type SQE struct {
	Opcode   Op       // opcode
	Flags    SQEFlags // flags (IOSQE_*)
	IOPrio   uint16   // ioprio; also accept/recv/send_zc flags (AcceptMultishot, RecvMultishot, ...)
	FD       int32    // fd
	Off      uint64   // off / addr2 / cmd_op
	Addr     uint64   // addr / splice_off_in
	Len      uint32   // len
	OpFlags  uint32   // rw_flags, msg_flags, timeout_flags, cancel_flags, poll32_events, ...
	UserData uint64   // user_data, echoed in the CQE
	BufIndex uint16   // buf_index / buf_group
	// Personality is the credentials id from IORING_REGISTER_PERSONALITY.
	Personality uint16
	SpliceFDIn  int32  // splice_fd_in / file_index / addr_len
	Addr3       uint64 // addr3
	_           uint64 // __pad2 / cmd
}

// CQE is struct io_uring_cqe, one 16-byte completion queue entry, always copied out of the
// ring by value (see [Ring.PeekCQEs]).
type CQE struct {
	UserData uint64 // user_data of the SQE
	Res      int32  // result: >= 0 on success, -errno on failure
	Flags    uint32 // IORING_CQE_F_* (CQEFlagMore, ...); buffer ID in the upper 16 bits
}

// Timespec is struct __kernel_timespec, used by timeouts and by waits with a timeout.
type Timespec struct {
	Sec  int64
	Nsec int64
}

// Params is struct io_uring_params, filled in by io_uring_setup(2).
type Params struct {
	SQEntries    uint32
	CQEntries    uint32
	Flags        uint32
	SQThreadCPU  uint32
	SQThreadIdle uint32
	Features     uint32
	WQFD         uint32
	_            [3]uint32
	SQOff        SQRingOffsets
	CQOff        CQRingOffsets
}

// SQRingOffsets is struct io_sqring_offsets: byte offsets into the SQ ring mapping.
type SQRingOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Flags       uint32
	Dropped     uint32
	Array       uint32
	_           uint32
	UserAddr    uint64
}

// CQRingOffsets is struct io_cqring_offsets: byte offsets into the CQ ring mapping.
type CQRingOffsets struct {
	Head        uint32
	Tail        uint32
	RingMask    uint32
	RingEntries uint32
	Overflow    uint32
	CQEs        uint32
	Flags       uint32
	_           uint32
	UserAddr    uint64
}

// getEventsArg is struct io_uring_getevents_arg, passed with IORING_ENTER_EXT_ARG.
type getEventsArg struct {
	Sigmask     uint64
	SigmaskSz   uint32
	MinWaitUsec uint32 // pad before Linux 6.12
	TS          uint64 // address of a Timespec
}

// probeHeader is the fixed part of struct io_uring_probe; probeOp entries follow it.
type probeHeader struct {
	LastOp Op
	OpsLen uint8
	_      uint16
	_      [3]uint32
}

// probeOp is struct io_uring_probe_op.
type probeOp struct {
	Op    Op
	_     uint8
	Flags uint16 // IO_URING_OP_SUPPORTED
	_     uint32
}

// probeOpsMax is how many probeOp entries we ask for: every value an Op can take.
const probeOpsMax = 256

// probeBuf is struct io_uring_probe with room for every opcode.
type probeBuf struct {
	Header probeHeader
	Ops    [probeOpsMax]probeOp
}

// probeOpSupported is IO_URING_OP_SUPPORTED.
const probeOpSupported = 1 << 0

// bufRingEntry is struct io_uring_buf. In entry 0, the Resv field is the ring's tail
// (struct io_uring_buf_ring overlays its tail on bufs[0].resv).
type bufRingEntry struct {
	Addr uint64
	Len  uint32
	BID  uint16
	Resv uint16
}

// bufRingTailOffset is offsetof(struct io_uring_buf_ring, tail).
const bufRingTailOffset = 14

// bufReg is struct io_uring_buf_reg, the argument of IORING_(UN)REGISTER_PBUF_RING.
type bufReg struct {
	RingAddr    uint64
	RingEntries uint32
	BGID        uint16
	Flags       uint16 // IOU_PBUF_RING_MMAP, IOU_PBUF_RING_INC
	_           [3]uint64
}

// rsrcUpdate is struct io_uring_rsrc_update, the argument of IORING_(UN)REGISTER_RING_FDS.
type rsrcUpdate struct {
	Offset uint32
	_      uint32
	Data   uint64
}

// Op is an io_uring opcode (IORING_OP_*). The version in each doc comment is the first
// Linux release that has it; [Probe.Supported] tells what the running kernel accepts.
type Op uint8

const (
	OpNop            Op = iota // OpNop is IORING_OP_NOP (Linux 5.1).
	OpReadv                    // OpReadv is IORING_OP_READV (Linux 5.1).
	OpWritev                   // OpWritev is IORING_OP_WRITEV (Linux 5.1).
	OpFsync                    // OpFsync is IORING_OP_FSYNC (Linux 5.1).
	OpReadFixed                // OpReadFixed is IORING_OP_READ_FIXED (Linux 5.1).
	OpWriteFixed               // OpWriteFixed is IORING_OP_WRITE_FIXED (Linux 5.1).
	OpPollAdd                  // OpPollAdd is IORING_OP_POLL_ADD (Linux 5.1).
	OpPollRemove               // OpPollRemove is IORING_OP_POLL_REMOVE (Linux 5.1).
	OpSyncFileRange            // OpSyncFileRange is IORING_OP_SYNC_FILE_RANGE (Linux 5.2).
	OpSendmsg                  // OpSendmsg is IORING_OP_SENDMSG (Linux 5.3).
	OpRecvmsg                  // OpRecvmsg is IORING_OP_RECVMSG (Linux 5.3).
	OpTimeout                  // OpTimeout is IORING_OP_TIMEOUT (Linux 5.4).
	OpTimeoutRemove            // OpTimeoutRemove is IORING_OP_TIMEOUT_REMOVE (Linux 5.5).
	OpAccept                   // OpAccept is IORING_OP_ACCEPT (Linux 5.5).
	OpAsyncCancel              // OpAsyncCancel is IORING_OP_ASYNC_CANCEL (Linux 5.5).
	OpLinkTimeout              // OpLinkTimeout is IORING_OP_LINK_TIMEOUT (Linux 5.5).
	OpConnect                  // OpConnect is IORING_OP_CONNECT (Linux 5.5).
	OpFallocate                // OpFallocate is IORING_OP_FALLOCATE (Linux 5.6).
	OpOpenat                   // OpOpenat is IORING_OP_OPENAT (Linux 5.6).
	OpClose                    // OpClose is IORING_OP_CLOSE (Linux 5.6).
	OpFilesUpdate              // OpFilesUpdate is IORING_OP_FILES_UPDATE (Linux 5.6).
	OpStatx                    // OpStatx is IORING_OP_STATX (Linux 5.6).
	OpRead                     // OpRead is IORING_OP_READ (Linux 5.6).
	OpWrite                    // OpWrite is IORING_OP_WRITE (Linux 5.6).
	OpFadvise                  // OpFadvise is IORING_OP_FADVISE (Linux 5.6).
	OpMadvise                  // OpMadvise is IORING_OP_MADVISE (Linux 5.6).
	OpSend                     // OpSend is IORING_OP_SEND (Linux 5.6).
	OpRecv                     // OpRecv is IORING_OP_RECV (Linux 5.6; multishot 6.0).
	OpOpenat2                  // OpOpenat2 is IORING_OP_OPENAT2 (Linux 5.6).
	OpEpollCtl                 // OpEpollCtl is IORING_OP_EPOLL_CTL (Linux 5.6).
	OpSplice                   // OpSplice is IORING_OP_SPLICE (Linux 5.7).
	OpProvideBuffers           // OpProvideBuffers is IORING_OP_PROVIDE_BUFFERS (Linux 5.7).
	OpRemoveBuffers            // OpRemoveBuffers is IORING_OP_REMOVE_BUFFERS (Linux 5.7).
	OpTee                      // OpTee is IORING_OP_TEE (Linux 5.8).
	OpShutdown                 // OpShutdown is IORING_OP_SHUTDOWN (Linux 5.11).
	OpRenameat                 // OpRenameat is IORING_OP_RENAMEAT (Linux 5.11).
	OpUnlinkat                 // OpUnlinkat is IORING_OP_UNLINKAT (Linux 5.11).
	OpMkdirat                  // OpMkdirat is IORING_OP_MKDIRAT (Linux 5.15).
	OpSymlinkat                // OpSymlinkat is IORING_OP_SYMLINKAT (Linux 5.15).
	OpLinkat                   // OpLinkat is IORING_OP_LINKAT (Linux 5.15).
	OpMsgRing                  // OpMsgRing is IORING_OP_MSG_RING (Linux 5.18).
	OpFsetxattr                // OpFsetxattr is IORING_OP_FSETXATTR (Linux 5.19).
	OpSetxattr                 // OpSetxattr is IORING_OP_SETXATTR (Linux 5.19).
	OpFgetxattr                // OpFgetxattr is IORING_OP_FGETXATTR (Linux 5.19).
	OpGetxattr                 // OpGetxattr is IORING_OP_GETXATTR (Linux 5.19).
	OpSocket                   // OpSocket is IORING_OP_SOCKET (Linux 5.19).
	OpURingCmd                 // OpURingCmd is IORING_OP_URING_CMD (Linux 5.19).
	OpSendZC                   // OpSendZC is IORING_OP_SEND_ZC (Linux 6.0).
	OpSendmsgZC                // OpSendmsgZC is IORING_OP_SENDMSG_ZC (Linux 6.1).
	OpReadMultishot            // OpReadMultishot is IORING_OP_READ_MULTISHOT (Linux 6.7).
	OpWaitid                   // OpWaitid is IORING_OP_WAITID (Linux 6.7).
	OpFutexWait                // OpFutexWait is IORING_OP_FUTEX_WAIT (Linux 6.7).
	OpFutexWake                // OpFutexWake is IORING_OP_FUTEX_WAKE (Linux 6.7).
	OpFutexWaitv               // OpFutexWaitv is IORING_OP_FUTEX_WAITV (Linux 6.7).
	OpFixedFDInstall           // OpFixedFDInstall is IORING_OP_FIXED_FD_INSTALL (Linux 6.8).
	OpFtruncate                // OpFtruncate is IORING_OP_FTRUNCATE (Linux 6.9).
	OpBind                     // OpBind is IORING_OP_BIND (Linux 6.11).
	OpListen                   // OpListen is IORING_OP_LISTEN (Linux 6.11).
	OpRecvZC                   // OpRecvZC is IORING_OP_RECV_ZC (Linux 6.15).
	OpEpollWait                // OpEpollWait is IORING_OP_EPOLL_WAIT (Linux 6.15).
	OpReadvFixed               // OpReadvFixed is IORING_OP_READV_FIXED (Linux 6.15).
	OpWritevFixed              // OpWritevFixed is IORING_OP_WRITEV_FIXED (Linux 6.15).
	OpPipe                     // OpPipe is IORING_OP_PIPE (Linux 6.16).

	// OpLast is IORING_OP_LAST as this package knows it: one past the last opcode above.
	OpLast
)

// OpRecvMultishot is the opcode a multishot receive uses: IORING_OP_RECV with
// IORING_RECV_MULTISHOT in ioprio (Linux 6.0). It exists so feature checks read naturally.
const OpRecvMultishot = OpRecv

var opNames = [...]string{
	"NOP", "READV", "WRITEV", "FSYNC", "READ_FIXED", "WRITE_FIXED", "POLL_ADD", "POLL_REMOVE",
	"SYNC_FILE_RANGE", "SENDMSG", "RECVMSG", "TIMEOUT", "TIMEOUT_REMOVE", "ACCEPT",
	"ASYNC_CANCEL", "LINK_TIMEOUT", "CONNECT", "FALLOCATE", "OPENAT", "CLOSE", "FILES_UPDATE",
	"STATX", "READ", "WRITE", "FADVISE", "MADVISE", "SEND", "RECV", "OPENAT2", "EPOLL_CTL",
	"SPLICE", "PROVIDE_BUFFERS", "REMOVE_BUFFERS", "TEE", "SHUTDOWN", "RENAMEAT", "UNLINKAT",
	"MKDIRAT", "SYMLINKAT", "LINKAT", "MSG_RING", "FSETXATTR", "SETXATTR", "FGETXATTR",
	"GETXATTR", "SOCKET", "URING_CMD", "SEND_ZC", "SENDMSG_ZC", "READ_MULTISHOT", "WAITID",
	"FUTEX_WAIT", "FUTEX_WAKE", "FUTEX_WAITV", "FIXED_FD_INSTALL", "FTRUNCATE", "BIND",
	"LISTEN", "RECV_ZC", "EPOLL_WAIT", "READV_FIXED", "WRITEV_FIXED", "PIPE",
}

// String returns the kernel name of the opcode, such as "IORING_OP_RECV".
func (o Op) String() string {
	if int(o) < len(opNames) {
		return "IORING_OP_" + opNames[o]
	}
	return "IORING_OP_" + itoa(uint64(o))
}

// SetupFlags is a set of io_uring_setup(2) flags (IORING_SETUP_*).
type SetupFlags uint32

const (
	SetupIOPoll           SetupFlags = 1 << 0  // IORING_SETUP_IOPOLL (Linux 5.1).
	SetupSQPoll           SetupFlags = 1 << 1  // IORING_SETUP_SQPOLL (Linux 5.1).
	SetupSQAff            SetupFlags = 1 << 2  // IORING_SETUP_SQ_AFF (Linux 5.1).
	SetupCQSize           SetupFlags = 1 << 3  // IORING_SETUP_CQSIZE (Linux 5.5).
	SetupClamp            SetupFlags = 1 << 4  // IORING_SETUP_CLAMP (Linux 5.6).
	SetupAttachWQ         SetupFlags = 1 << 5  // IORING_SETUP_ATTACH_WQ (Linux 5.6).
	SetupRDisabled        SetupFlags = 1 << 6  // IORING_SETUP_R_DISABLED (Linux 5.10).
	SetupSubmitAll        SetupFlags = 1 << 7  // IORING_SETUP_SUBMIT_ALL (Linux 5.18).
	SetupCoopTaskrun      SetupFlags = 1 << 8  // IORING_SETUP_COOP_TASKRUN (Linux 5.19).
	SetupTaskrunFlag      SetupFlags = 1 << 9  // IORING_SETUP_TASKRUN_FLAG (Linux 5.19).
	SetupSQE128           SetupFlags = 1 << 10 // IORING_SETUP_SQE128 (Linux 5.19).
	SetupCQE32            SetupFlags = 1 << 11 // IORING_SETUP_CQE32 (Linux 5.19).
	SetupSingleIssuer     SetupFlags = 1 << 12 // IORING_SETUP_SINGLE_ISSUER (Linux 6.0).
	SetupDeferTaskrun     SetupFlags = 1 << 13 // IORING_SETUP_DEFER_TASKRUN (Linux 6.1).
	SetupNoMmap           SetupFlags = 1 << 14 // IORING_SETUP_NO_MMAP (Linux 6.5).
	SetupRegisteredFDOnly SetupFlags = 1 << 15 // IORING_SETUP_REGISTERED_FD_ONLY (Linux 6.5).
	SetupNoSQArray        SetupFlags = 1 << 16 // IORING_SETUP_NO_SQARRAY (Linux 6.6).
	SetupHybridIOPoll     SetupFlags = 1 << 17 // IORING_SETUP_HYBRID_IOPOLL (Linux 6.13).
)

var setupNames = []string{
	"IOPOLL", "SQPOLL", "SQ_AFF", "CQSIZE", "CLAMP", "ATTACH_WQ", "R_DISABLED", "SUBMIT_ALL",
	"COOP_TASKRUN", "TASKRUN_FLAG", "SQE128", "CQE32", "SINGLE_ISSUER", "DEFER_TASKRUN",
	"NO_MMAP", "REGISTERED_FD_ONLY", "NO_SQARRAY", "HYBRID_IOPOLL",
}

// Has reports whether every flag in g is in f.
func (f SetupFlags) Has(g SetupFlags) bool { return f&g == g }

// String lists the flags as "SINGLE_ISSUER|DEFER_TASKRUN" ("0" for none).
func (f SetupFlags) String() string { return flagString(uint64(f), setupNames) }

// Features is the set of IORING_FEAT_* bits the kernel reports at setup.
type Features uint32

const (
	FeatSingleMmap     Features = 1 << 0  // IORING_FEAT_SINGLE_MMAP (Linux 5.4).
	FeatNoDrop         Features = 1 << 1  // IORING_FEAT_NODROP (Linux 5.5).
	FeatSubmitStable   Features = 1 << 2  // IORING_FEAT_SUBMIT_STABLE (Linux 5.5).
	FeatRWCurPos       Features = 1 << 3  // IORING_FEAT_RW_CUR_POS (Linux 5.6).
	FeatCurPersonality Features = 1 << 4  // IORING_FEAT_CUR_PERSONALITY (Linux 5.6).
	FeatFastPoll       Features = 1 << 5  // IORING_FEAT_FAST_POLL (Linux 5.7).
	FeatPoll32Bits     Features = 1 << 6  // IORING_FEAT_POLL_32BITS (Linux 5.9).
	FeatSQPollNonfixed Features = 1 << 7  // IORING_FEAT_SQPOLL_NONFIXED (Linux 5.11).
	FeatExtArg         Features = 1 << 8  // IORING_FEAT_EXT_ARG (Linux 5.11).
	FeatNativeWorkers  Features = 1 << 9  // IORING_FEAT_NATIVE_WORKERS (Linux 5.12).
	FeatRsrcTags       Features = 1 << 10 // IORING_FEAT_RSRC_TAGS (Linux 5.13).
	FeatCQESkip        Features = 1 << 11 // IORING_FEAT_CQE_SKIP (Linux 5.17).
	FeatLinkedFile     Features = 1 << 12 // IORING_FEAT_LINKED_FILE (Linux 5.17).
	FeatRegRegRing     Features = 1 << 13 // IORING_FEAT_REG_REG_RING (Linux 6.3).
	FeatRecvsendBundle Features = 1 << 14 // IORING_FEAT_RECVSEND_BUNDLE (Linux 6.10).
	FeatMinTimeout     Features = 1 << 15 // IORING_FEAT_MIN_TIMEOUT (Linux 6.12).
	FeatRWAttr         Features = 1 << 16 // IORING_FEAT_RW_ATTR (Linux 6.14).
	FeatNoIOWait       Features = 1 << 17 // IORING_FEAT_NO_IOWAIT (Linux 6.15).
)

var featNames = []string{
	"SINGLE_MMAP", "NODROP", "SUBMIT_STABLE", "RW_CUR_POS", "CUR_PERSONALITY", "FAST_POLL",
	"POLL_32BITS", "SQPOLL_NONFIXED", "EXT_ARG", "NATIVE_WORKERS", "RSRC_TAGS", "CQE_SKIP",
	"LINKED_FILE", "REG_REG_RING", "RECVSEND_BUNDLE", "MIN_TIMEOUT", "RW_ATTR", "NO_IOWAIT",
}

// Has reports whether every feature in g is in f.
func (f Features) Has(g Features) bool { return f&g == g }

// String lists the features as "SINGLE_MMAP|NODROP|..." ("0" for none).
func (f Features) String() string { return flagString(uint64(f), featNames) }

// EnterFlags is a set of io_uring_enter(2) flags (IORING_ENTER_*).
type EnterFlags uint32

const (
	EnterGetEvents      EnterFlags = 1 << 0 // IORING_ENTER_GETEVENTS (Linux 5.1).
	EnterSQWakeup       EnterFlags = 1 << 1 // IORING_ENTER_SQ_WAKEUP (Linux 5.1).
	EnterSQWait         EnterFlags = 1 << 2 // IORING_ENTER_SQ_WAIT (Linux 5.10).
	EnterExtArg         EnterFlags = 1 << 3 // IORING_ENTER_EXT_ARG (Linux 5.11).
	EnterRegisteredRing EnterFlags = 1 << 4 // IORING_ENTER_REGISTERED_RING (Linux 5.18).
	EnterAbsTimer       EnterFlags = 1 << 5 // IORING_ENTER_ABS_TIMER (Linux 6.12).
	EnterExtArgReg      EnterFlags = 1 << 6 // IORING_ENTER_EXT_ARG_REG (Linux 6.12).
	EnterNoIOWait       EnterFlags = 1 << 7 // IORING_ENTER_NO_IOWAIT (Linux 6.15).
)

var enterNames = []string{
	"GETEVENTS", "SQ_WAKEUP", "SQ_WAIT", "EXT_ARG", "REGISTERED_RING", "ABS_TIMER",
	"EXT_ARG_REG", "NO_IOWAIT",
}

// Has reports whether every flag in g is in f.
func (f EnterFlags) Has(g EnterFlags) bool { return f&g == g }

// String lists the flags as "GETEVENTS|EXT_ARG" ("0" for none).
func (f EnterFlags) String() string { return flagString(uint64(f), enterNames) }

// SQEFlags is a set of per-SQE flags (IOSQE_*).
type SQEFlags uint8

const (
	SQEFixedFile      SQEFlags = 1 << 0 // IOSQE_FIXED_FILE (Linux 5.1): FD is an index into the registered files.
	SQEIODrain        SQEFlags = 1 << 1 // IOSQE_IO_DRAIN (Linux 5.2): start only after all prior SQEs complete.
	SQEIOLink         SQEFlags = 1 << 2 // IOSQE_IO_LINK (Linux 5.3): the next SQE starts after this one succeeds.
	SQEIOHardlink     SQEFlags = 1 << 3 // IOSQE_IO_HARDLINK (Linux 5.5): like IO_LINK, even if this one fails.
	SQEAsync          SQEFlags = 1 << 4 // IOSQE_ASYNC (Linux 5.6): always go to the async worker.
	SQEBufferSelect   SQEFlags = 1 << 5 // IOSQE_BUFFER_SELECT (Linux 5.7): pick a provided buffer (see SetBufGroup).
	SQECQESkipSuccess SQEFlags = 1 << 6 // IOSQE_CQE_SKIP_SUCCESS (Linux 5.17): no CQE unless it fails.
)

var sqeFlagNames = []string{
	"FIXED_FILE", "IO_DRAIN", "IO_LINK", "IO_HARDLINK", "ASYNC", "BUFFER_SELECT", "CQE_SKIP_SUCCESS",
}

// Has reports whether every flag in g is in f.
func (f SQEFlags) Has(g SQEFlags) bool { return f&g == g }

// String lists the flags as "IO_LINK|ASYNC" ("0" for none).
func (f SQEFlags) String() string { return flagString(uint64(f), sqeFlagNames) }

// CQE flags (IORING_CQE_F_*), found in [CQE].Flags.
const (
	CQEFlagBuffer       uint32 = 1 << 0 // IORING_CQE_F_BUFFER (Linux 5.7): upper 16 bits hold a buffer ID.
	CQEFlagMore         uint32 = 1 << 1 // IORING_CQE_F_MORE (Linux 5.13): more CQEs follow for this SQE.
	CQEFlagSockNonempty uint32 = 1 << 2 // IORING_CQE_F_SOCK_NONEMPTY (Linux 5.19): more data to read.
	CQEFlagNotif        uint32 = 1 << 3 // IORING_CQE_F_NOTIF (Linux 6.0): zero-copy send notification.
	CQEFlagBufMore      uint32 = 1 << 4 // IORING_CQE_F_BUF_MORE (Linux 6.12): incremental buffer not used up.

	// CQEBufferShift is IORING_CQE_BUFFER_SHIFT: the buffer ID is Flags >> CQEBufferShift.
	CQEBufferShift = 16
)

// SQ ring flags (IORING_SQ_*), set by the kernel in the SQ ring's flags word.
const (
	sqNeedWakeup = 1 << 0 // IORING_SQ_NEED_WAKEUP
	sqCQOverflow = 1 << 1 // IORING_SQ_CQ_OVERFLOW
	sqTaskrun    = 1 << 2 // IORING_SQ_TASKRUN
)

// TimeoutFlags is the timeout_flags field of TIMEOUT, TIMEOUT_REMOVE and LINK_TIMEOUT.
type TimeoutFlags uint32

const (
	TimeoutAbs               TimeoutFlags = 1 << 0 // IORING_TIMEOUT_ABS (Linux 5.5).
	TimeoutUpdate            TimeoutFlags = 1 << 1 // IORING_TIMEOUT_UPDATE (Linux 5.11).
	TimeoutBoottime          TimeoutFlags = 1 << 2 // IORING_TIMEOUT_BOOTTIME (Linux 5.15).
	TimeoutRealtime          TimeoutFlags = 1 << 3 // IORING_TIMEOUT_REALTIME (Linux 5.15).
	TimeoutLinkTimeoutUpdate TimeoutFlags = 1 << 4 // IORING_LINK_TIMEOUT_UPDATE (Linux 5.15).
	TimeoutETimeSuccess      TimeoutFlags = 1 << 5 // IORING_TIMEOUT_ETIME_SUCCESS (Linux 5.16).
	TimeoutMultishot         TimeoutFlags = 1 << 6 // IORING_TIMEOUT_MULTISHOT (Linux 6.4).
)

// CancelFlags is the cancel_flags field of ASYNC_CANCEL.
type CancelFlags uint32

const (
	CancelAll      CancelFlags = 1 << 0 // IORING_ASYNC_CANCEL_ALL (Linux 5.19): every match, not the first.
	CancelFD       CancelFlags = 1 << 1 // IORING_ASYNC_CANCEL_FD (Linux 5.19): match by fd.
	CancelAny      CancelFlags = 1 << 2 // IORING_ASYNC_CANCEL_ANY (Linux 5.19): match any request.
	CancelFDFixed  CancelFlags = 1 << 3 // IORING_ASYNC_CANCEL_FD_FIXED (Linux 6.0).
	CancelUserData CancelFlags = 1 << 4 // IORING_ASYNC_CANCEL_USERDATA (Linux 6.6).
	CancelOp       CancelFlags = 1 << 5 // IORING_ASYNC_CANCEL_OP (Linux 6.6).
)

// Poll flags (IORING_POLL_*), stored in the len field of POLL_ADD and POLL_REMOVE.
const (
	PollAddMulti       uint32 = 1 << 0 // IORING_POLL_ADD_MULTI (Linux 5.13).
	PollUpdateEvents   uint32 = 1 << 1 // IORING_POLL_UPDATE_EVENTS (Linux 5.13).
	PollUpdateUserData uint32 = 1 << 2 // IORING_POLL_UPDATE_USER_DATA (Linux 5.13).
	PollAddLevel       uint32 = 1 << 3 // IORING_POLL_ADD_LEVEL (Linux 6.0).
)

// Flags carried in the ioprio field of accept, recv/send and send_zc SQEs.
const (
	RecvsendPollFirst uint16 = 1 << 0 // IORING_RECVSEND_POLL_FIRST (Linux 5.19).
	RecvMultishot     uint16 = 1 << 1 // IORING_RECV_MULTISHOT (Linux 6.0).
	RecvsendFixedBuf  uint16 = 1 << 2 // IORING_RECVSEND_FIXED_BUF (Linux 6.0).
	SendZCReportUsage uint16 = 1 << 3 // IORING_SEND_ZC_REPORT_USAGE (Linux 6.2).
	RecvsendBundle    uint16 = 1 << 4 // IORING_RECVSEND_BUNDLE (Linux 6.10).
	AcceptMultishot   uint16 = 1 << 0 // IORING_ACCEPT_MULTISHOT (Linux 5.19).
	AcceptDontWait    uint16 = 1 << 1 // IORING_ACCEPT_DONTWAIT (Linux 6.10).
	AcceptPollFirst   uint16 = 1 << 2 // IORING_ACCEPT_POLL_FIRST (Linux 6.10).
)

// MSG_RING flags (msg_ring_flags) and commands (stored in addr).
const (
	MsgRingCQESkip   uint32 = 1 << 0 // IORING_MSG_RING_CQE_SKIP (Linux 6.0).
	MsgRingFlagsPass uint32 = 1 << 1 // IORING_MSG_RING_FLAGS_PASS (Linux 6.3).
	msgData                 = 0      // IORING_MSG_DATA
	msgSendFD               = 1      // IORING_MSG_SEND_FD
)

// FileIndexAlloc, as the target slot of an operation that creates a direct descriptor
// (accept, socket, MSG_RING with IORING_MSG_SEND_FD), asks the kernel to pick a free
// slot of the registered file table and report it in Res (IORING_FILE_INDEX_ALLOC,
// Linux 5.19).
const FileIndexAlloc = ^uint32(0)

// Socket commands of IORING_OP_URING_CMD (SOCKET_URING_OP_*), stored in cmd_op.
const (
	SocketCmdSIOCINQ    uint32 = 0 // SOCKET_URING_OP_SIOCINQ (Linux 6.7).
	SocketCmdSIOCOUTQ   uint32 = 1 // SOCKET_URING_OP_SIOCOUTQ (Linux 6.7).
	SocketCmdGetsockopt uint32 = 2 // SOCKET_URING_OP_GETSOCKOPT (Linux 6.7): SOL_SOCKET only.
	SocketCmdSetsockopt uint32 = 3 // SOCKET_URING_OP_SETSOCKOPT (Linux 6.7).
)

// FixedFDNoCloexec makes IORING_OP_FIXED_FD_INSTALL install a descriptor without
// O_CLOEXEC (IORING_FIXED_FD_NO_CLOEXEC, Linux 6.8).
const FixedFDNoCloexec uint32 = 1 << 0

// RsrcRegisterSparse registers a table of empty slots (IORING_RSRC_REGISTER_SPARSE,
// Linux 5.19).
const rsrcRegisterSparse uint32 = 1 << 0

// rsrcRegister is struct io_uring_rsrc_register (IORING_REGISTER_FILES2,
// IORING_REGISTER_BUFFERS2).
type rsrcRegister struct {
	Nr    uint32
	Flags uint32
	Resv2 uint64
	Data  uint64
	Tags  uint64
}

// rsrcUpdate2 is struct io_uring_rsrc_update2 (IORING_REGISTER_BUFFERS_UPDATE,
// IORING_REGISTER_FILES_UPDATE2).
type rsrcUpdate2 struct {
	Offset uint32
	_      uint32
	Data   uint64
	Tags   uint64
	Nr     uint32
	_      uint32
}

// RegisterOp is an io_uring_register(2) opcode (IORING_REGISTER_*).
type RegisterOp uint32

const (
	RegisterBuffers        RegisterOp = 0  // IORING_REGISTER_BUFFERS (Linux 5.1).
	UnregisterBuffers      RegisterOp = 1  // IORING_UNREGISTER_BUFFERS (Linux 5.1).
	RegisterFiles          RegisterOp = 2  // IORING_REGISTER_FILES (Linux 5.1).
	UnregisterFiles        RegisterOp = 3  // IORING_UNREGISTER_FILES (Linux 5.1).
	RegisterEventfd        RegisterOp = 4  // IORING_REGISTER_EVENTFD (Linux 5.2).
	UnregisterEventfd      RegisterOp = 5  // IORING_UNREGISTER_EVENTFD (Linux 5.2).
	RegisterFilesUpdate    RegisterOp = 6  // IORING_REGISTER_FILES_UPDATE (Linux 5.5).
	RegisterEventfdAsync   RegisterOp = 7  // IORING_REGISTER_EVENTFD_ASYNC (Linux 5.6).
	RegisterProbe          RegisterOp = 8  // IORING_REGISTER_PROBE (Linux 5.6).
	RegisterPersonality    RegisterOp = 9  // IORING_REGISTER_PERSONALITY (Linux 5.6).
	UnregisterPersonality  RegisterOp = 10 // IORING_UNREGISTER_PERSONALITY (Linux 5.6).
	RegisterRestrictions   RegisterOp = 11 // IORING_REGISTER_RESTRICTIONS (Linux 5.10).
	RegisterEnableRings    RegisterOp = 12 // IORING_REGISTER_ENABLE_RINGS (Linux 5.10).
	RegisterFiles2         RegisterOp = 13 // IORING_REGISTER_FILES2 (Linux 5.13).
	RegisterFilesUpdate2   RegisterOp = 14 // IORING_REGISTER_FILES_UPDATE2 (Linux 5.13).
	RegisterBuffers2       RegisterOp = 15 // IORING_REGISTER_BUFFERS2 (Linux 5.13).
	RegisterBuffersUpdate  RegisterOp = 16 // IORING_REGISTER_BUFFERS_UPDATE (Linux 5.13).
	RegisterIOWQAff        RegisterOp = 17 // IORING_REGISTER_IOWQ_AFF (Linux 5.14).
	UnregisterIOWQAff      RegisterOp = 18 // IORING_UNREGISTER_IOWQ_AFF (Linux 5.14).
	RegisterIOWQMaxWorkers RegisterOp = 19 // IORING_REGISTER_IOWQ_MAX_WORKERS (Linux 5.15).
	RegisterRingFDs        RegisterOp = 20 // IORING_REGISTER_RING_FDS (Linux 5.18).
	UnregisterRingFDs      RegisterOp = 21 // IORING_UNREGISTER_RING_FDS (Linux 5.18).
	RegisterPbufRing       RegisterOp = 22 // IORING_REGISTER_PBUF_RING (Linux 5.19).
	UnregisterPbufRing     RegisterOp = 23 // IORING_UNREGISTER_PBUF_RING (Linux 5.19).
	RegisterSyncCancel     RegisterOp = 24 // IORING_REGISTER_SYNC_CANCEL (Linux 6.0).
	RegisterFileAllocRange RegisterOp = 25 // IORING_REGISTER_FILE_ALLOC_RANGE (Linux 6.0).
	RegisterPbufStatus     RegisterOp = 26 // IORING_REGISTER_PBUF_STATUS (Linux 6.8).
	RegisterNAPI           RegisterOp = 27 // IORING_REGISTER_NAPI (Linux 6.9).
	UnregisterNAPI         RegisterOp = 28 // IORING_UNREGISTER_NAPI (Linux 6.9).
	RegisterClock          RegisterOp = 29 // IORING_REGISTER_CLOCK (Linux 6.12).
	RegisterCloneBuffers   RegisterOp = 30 // IORING_REGISTER_CLONE_BUFFERS (Linux 6.12).
	RegisterSendMsgRing    RegisterOp = 31 // IORING_REGISTER_SEND_MSG_RING (Linux 6.13).
	RegisterZCRXIfq        RegisterOp = 32 // IORING_REGISTER_ZCRX_IFQ (Linux 6.15).
	RegisterResizeRings    RegisterOp = 33 // IORING_REGISTER_RESIZE_RINGS (Linux 6.13).
	RegisterMemRegion      RegisterOp = 34 // IORING_REGISTER_MEM_REGION (Linux 6.13).
)

// mmap offsets (IORING_OFF_*).
const (
	offSQRing = 0          // IORING_OFF_SQ_RING
	offCQRing = 0x8000000  // IORING_OFF_CQ_RING
	offSQEs   = 0x10000000 // IORING_OFF_SQES
)

// Linux socket address families, used by [Sockaddr] so the raw bytes match the kernel's
// layout on every GOOS the package compiles for.
const (
	afUnix  = 1  // AF_UNIX
	afInet  = 2  // AF_INET
	afInet6 = 10 // AF_INET6
)

// flagString renders a bit set with names[i] for bit i, unknown bits in hex.
func flagString(v uint64, names []string) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for i := 0; v != 0 && i < 64; i++ {
		bit := uint64(1) << i
		if v&bit == 0 {
			continue
		}
		v &^= bit
		if len(b) > 0 {
			b = append(b, '|')
		}
		if i < len(names) {
			b = append(b, names[i]...)
		} else {
			b = append(b, "0x"...)
			b = appendHex(b, bit)
		}
	}
	return string(b)
}

func appendHex(b []byte, v uint64) []byte {
	const digits = "0123456789abcdef"
	var tmp [16]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = digits[v&0xf]
		v >>= 4
		if v == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}

func itoa(v uint64) string {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(tmp[i:])
}
