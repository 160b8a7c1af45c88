package uring

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
)

// PrepWaitid prepares a waitid(2) (liburing io_uring_prep_waitid; IORING_OP_WAITID,
// Linux 6.7): wait for the child named by idtype and id (unix.P_PID, unix.P_PIDFD with
// a process fd, unix.P_ALL, ...) to change state as options asks (unix.WEXITED, ...),
// and fill *info as waitid(2) does. Res is 0, or -errno (-ECHILD when no such child).
// The waited-for child is reaped unless options has unix.WNOWAIT. id is never a direct
// descriptor: do not set IOSQE_FIXED_FILE.
//
// Memory: the kernel writes *info when the wait completes; see the package's Prep
// methods.
func (s *SQE) PrepWaitid(idtype, id int, info *unix.Siginfo, options int) {
	p := unsafe.Pointer(info)
	escape(p)
	s.prepRW(OpWaitid, id, 0, uint32(idtype), uint64(uintptr(p)))
	s.SpliceFDIn = int32(options) // file_index carries the options
}

// WaitidStatus returns the fields of a child's siginfo that x/sys/unix
// leaves in padding: si_pid, and si_status (the exit code when info.Code
// is CLD_EXITED, the signal's number when CLD_KILLED or CLD_DUMPED), for
// the *info a waitid, through the ring or waitid(2), filled.
func WaitidStatus(info *unix.Siginfo) (pid, status int) {
	// After si_signo, si_errno, si_code and their padding come si_pid,
	// si_uid and si_status (the kernel's struct siginfo, _sigchld).
	raw := (*[32]byte)(unsafe.Pointer(info))
	return int(int32(binary.NativeEndian.Uint32(raw[16:20]))), int(int32(binary.NativeEndian.Uint32(raw[24:28])))
}
