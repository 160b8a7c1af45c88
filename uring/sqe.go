package uring

// SetUserData sets the token echoed in the operation's CQEs. user_data is opaque to the
// kernel: store a token, never a pointer.
func (s *SQE) SetUserData(v uint64) { s.UserData = v }

// SetFlags adds f (IOSQE_*) to the SQE's flags, keeping flags a Prep method set (such as
// IOSQE_BUFFER_SELECT from [SQE.PrepRecvMultishot]). Unlike liburing's
// io_uring_sqe_set_flags, which overwrites, it ORs; call it after the Prep method, which
// resets the flags as liburing's prep helpers do.
func (s *SQE) SetFlags(f SQEFlags) { s.Flags |= f }

// SetBufGroup sets the provided-buffer group (buf_group) the kernel picks a buffer from
// when IOSQE_BUFFER_SELECT is set, as liburing's sqe->buf_group. Call it after the Prep
// method.
func (s *SQE) SetBufGroup(group uint16) { s.BufIndex = group }

// SetIOPrio ORs p into the ioprio field: the I/O priority for reads and writes. For
// accept, recv, send and send_zc the field carries flags (AcceptMultishot, RecvMultishot,
// RecvsendPollFirst, ...) which Prep methods set and SetIOPrio keeps. Call it after the
// Prep method.
func (s *SQE) SetIOPrio(p uint16) { s.IOPrio |= p }
