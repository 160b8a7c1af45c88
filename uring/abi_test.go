package uring

import (
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
)

// The numbers below are the kernel UAPI layouts (include/uapi/linux/io_uring.h).
func TestABILayout(t *testing.T) {
	var sqe SQE
	assert.Equal(t, uintptr(64), unsafe.Sizeof(sqe))
	for name, got := range map[string][2]uintptr{
		"opcode":       {unsafe.Offsetof(sqe.Opcode), 0},
		"flags":        {unsafe.Offsetof(sqe.Flags), 1},
		"ioprio":       {unsafe.Offsetof(sqe.IOPrio), 2},
		"fd":           {unsafe.Offsetof(sqe.FD), 4},
		"off":          {unsafe.Offsetof(sqe.Off), 8},
		"addr":         {unsafe.Offsetof(sqe.Addr), 16},
		"len":          {unsafe.Offsetof(sqe.Len), 24},
		"rw_flags":     {unsafe.Offsetof(sqe.OpFlags), 28},
		"user_data":    {unsafe.Offsetof(sqe.UserData), 32},
		"buf_index":    {unsafe.Offsetof(sqe.BufIndex), 40},
		"personality":  {unsafe.Offsetof(sqe.Personality), 42},
		"splice_fd_in": {unsafe.Offsetof(sqe.SpliceFDIn), 44},
		"addr3":        {unsafe.Offsetof(sqe.Addr3), 48},
	} {
		assert.Equal(t, got[1], got[0], "io_uring_sqe.%s", name)
	}

	var cqe CQE
	assert.Equal(t, uintptr(16), unsafe.Sizeof(cqe))
	assert.Equal(t, uintptr(8), unsafe.Offsetof(cqe.Res))
	assert.Equal(t, uintptr(12), unsafe.Offsetof(cqe.Flags))

	var p Params
	assert.Equal(t, uintptr(120), unsafe.Sizeof(p))
	assert.Equal(t, uintptr(20), unsafe.Offsetof(p.Features))
	assert.Equal(t, uintptr(24), unsafe.Offsetof(p.WQFD))
	assert.Equal(t, uintptr(40), unsafe.Offsetof(p.SQOff))
	assert.Equal(t, uintptr(80), unsafe.Offsetof(p.CQOff))

	var so SQRingOffsets
	assert.Equal(t, uintptr(40), unsafe.Sizeof(so))
	assert.Equal(t, uintptr(24), unsafe.Offsetof(so.Array))
	assert.Equal(t, uintptr(32), unsafe.Offsetof(so.UserAddr))
	var co CQRingOffsets
	assert.Equal(t, uintptr(40), unsafe.Sizeof(co))
	assert.Equal(t, uintptr(20), unsafe.Offsetof(co.CQEs))
	assert.Equal(t, uintptr(24), unsafe.Offsetof(co.Flags))
	assert.Equal(t, uintptr(32), unsafe.Offsetof(co.UserAddr))

	var ga getEventsArg
	assert.Equal(t, uintptr(24), unsafe.Sizeof(ga))
	assert.Equal(t, uintptr(8), unsafe.Offsetof(ga.SigmaskSz))
	assert.Equal(t, uintptr(16), unsafe.Offsetof(ga.TS))
	var ts Timespec
	assert.Equal(t, uintptr(16), unsafe.Sizeof(ts))

	assert.Equal(t, uintptr(16), unsafe.Sizeof(probeHeader{}))
	assert.Equal(t, uintptr(8), unsafe.Sizeof(probeOp{}))
	var pb probeBuf
	assert.Equal(t, uintptr(16), unsafe.Offsetof(pb.Ops))
	var po probeOp
	assert.Equal(t, uintptr(2), unsafe.Offsetof(po.Flags))

	var be bufRingEntry
	assert.Equal(t, uintptr(16), unsafe.Sizeof(be))
	assert.Equal(t, uintptr(12), unsafe.Offsetof(be.BID))
	assert.Equal(t, uintptr(bufRingTailOffset), unsafe.Offsetof(be.Resv))
	var br bufReg
	assert.Equal(t, uintptr(40), unsafe.Sizeof(br))
	assert.Equal(t, uintptr(8), unsafe.Offsetof(br.RingEntries))
	assert.Equal(t, uintptr(12), unsafe.Offsetof(br.BGID))
	assert.Equal(t, uintptr(14), unsafe.Offsetof(br.Flags))
	assert.Equal(t, uintptr(16), unsafe.Sizeof(rsrcUpdate{}))
	assert.Equal(t, uintptr(32), unsafe.Sizeof(rsrcRegister{}))
	var ru rsrcUpdate2
	assert.Equal(t, uintptr(32), unsafe.Sizeof(ru))
	assert.Equal(t, uintptr(8), unsafe.Offsetof(ru.Data))
	assert.Equal(t, uintptr(16), unsafe.Offsetof(ru.Tags))
	assert.Equal(t, uintptr(24), unsafe.Offsetof(ru.Nr))
}

func TestABIConstants(t *testing.T) {
	// Spot checks against the UAPI header.
	assert.Equal(t, Op(27), OpRecv)
	assert.Equal(t, Op(40), OpMsgRing)
	assert.Equal(t, Op(47), OpSendZC)
	assert.Equal(t, Op(62), OpPipe)
	assert.Equal(t, SetupFlags(1<<12), SetupSingleIssuer)
	assert.Equal(t, SetupFlags(1<<16), SetupNoSQArray)
	assert.Equal(t, Features(1<<8), FeatExtArg)
	assert.Equal(t, EnterFlags(1<<4), EnterRegisteredRing)
	assert.Equal(t, SQEFlags(1<<6), SQECQESkipSuccess)
	assert.Equal(t, RegisterOp(22), RegisterPbufRing)
	assert.Equal(t, RegisterOp(20), RegisterRingFDs)
}
