//go:build giouring

// Cross-checks against github.com/pawelgaczynski/giouring, an independent Go port of
// liburing. Run with:
//
//	go test -tags giouring -ldflags=-checklinkname=0 ./uring/
//
// (giouring links to syscall internals with go:linkname).
package uring

import (
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/pawelgaczynski/giouring"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ringmachine/ringmachine/internal/leakcheck"
)

func TestGiouringOpcodes(t *testing.T) {
	theirs := []uint8{
		giouring.OpNop, giouring.OpReadv, giouring.OpWritev, giouring.OpFsync, giouring.OpReadFixed,
		giouring.OpWriteFixed, giouring.OpPollAdd, giouring.OpPollRemove, giouring.OpSyncFileRange,
		giouring.OpSendmsg, giouring.OpRecvmsg, giouring.OpTimeout, giouring.OpTimeoutRemove,
		giouring.OpAccept, giouring.OpAsyncCancel, giouring.OpLinkTimeout, giouring.OpConnect,
		giouring.OpFallocate, giouring.OpOpenat, giouring.OpClose, giouring.OpFilesUpdate,
		giouring.OpStatx, giouring.OpRead, giouring.OpWrite, giouring.OpFadvise, giouring.OpMadvise,
		giouring.OpSend, giouring.OpRecv, giouring.OpOpenat2, giouring.OpEpollCtl, giouring.OpSplice,
		giouring.OpProvideBuffers, giouring.OpRemoveBuffers, giouring.OpTee, giouring.OpShutdown,
		giouring.OpRenameat, giouring.OpUnlinkat, giouring.OpMkdirat, giouring.OpSymlinkat,
		giouring.OpLinkat, giouring.OpMsgRing, giouring.OpFsetxattr, giouring.OpSetxattr,
		giouring.OpFgetxattr, giouring.OpGetxattr, giouring.OpSocket, giouring.OpUringCmd,
		giouring.OpSendZC, giouring.OpSendMsgZC,
	}
	ours := []Op{
		OpNop, OpReadv, OpWritev, OpFsync, OpReadFixed, OpWriteFixed, OpPollAdd, OpPollRemove,
		OpSyncFileRange, OpSendmsg, OpRecvmsg, OpTimeout, OpTimeoutRemove, OpAccept, OpAsyncCancel,
		OpLinkTimeout, OpConnect, OpFallocate, OpOpenat, OpClose, OpFilesUpdate, OpStatx, OpRead,
		OpWrite, OpFadvise, OpMadvise, OpSend, OpRecv, OpOpenat2, OpEpollCtl, OpSplice,
		OpProvideBuffers, OpRemoveBuffers, OpTee, OpShutdown, OpRenameat, OpUnlinkat, OpMkdirat,
		OpSymlinkat, OpLinkat, OpMsgRing, OpFsetxattr, OpSetxattr, OpFgetxattr, OpGetxattr,
		OpSocket, OpURingCmd, OpSendZC, OpSendmsgZC,
	}
	require.Len(t, ours, len(theirs))
	for i := range theirs {
		assert.Equal(t, theirs[i], uint8(ours[i]), "%v", ours[i])
	}
	assert.Equal(t, int(giouring.OpLast), int(OpSendmsgZC)+1, "giouring stops at SENDMSG_ZC")
}

func TestGiouringFlags(t *testing.T) {
	type pair struct {
		name        string
		theirs, our uint64
	}
	pairs := []pair{
		{"SetupIOPoll", uint64(giouring.SetupIOPoll), uint64(SetupIOPoll)},
		{"SetupSQPoll", uint64(giouring.SetupSQPoll), uint64(SetupSQPoll)},
		{"SetupSQAff", uint64(giouring.SetupSQAff), uint64(SetupSQAff)},
		{"SetupCQSize", uint64(giouring.SetupCQSize), uint64(SetupCQSize)},
		{"SetupClamp", uint64(giouring.SetupClamp), uint64(SetupClamp)},
		{"SetupAttachWQ", uint64(giouring.SetupAttachWQ), uint64(SetupAttachWQ)},
		{"SetupRDisabled", uint64(giouring.SetupRDisabled), uint64(SetupRDisabled)},
		{"SetupSubmitAll", uint64(giouring.SetupSubmitAll), uint64(SetupSubmitAll)},
		{"SetupCoopTaskrun", uint64(giouring.SetupCoopTaskrun), uint64(SetupCoopTaskrun)},
		{"SetupTaskrunFlag", uint64(giouring.SetupTaskrunFlag), uint64(SetupTaskrunFlag)},
		{"SetupSQE128", uint64(giouring.SetupSQE128), uint64(SetupSQE128)},
		{"SetupCQE32", uint64(giouring.SetupCQE32), uint64(SetupCQE32)},
		{"SetupSingleIssuer", uint64(giouring.SetupSingleIssuer), uint64(SetupSingleIssuer)},
		{"SetupDeferTaskrun", uint64(giouring.SetupDeferTaskrun), uint64(SetupDeferTaskrun)},
		{"SetupNoMmap", uint64(giouring.SetupNoMmap), uint64(SetupNoMmap)},
		{"SetupRegisteredFdOnly", uint64(giouring.SetupRegisteredFdOnly), uint64(SetupRegisteredFDOnly)},

		{"FeatSingleMMap", uint64(giouring.FeatSingleMMap), uint64(FeatSingleMmap)},
		{"FeatNoDrop", uint64(giouring.FeatNoDrop), uint64(FeatNoDrop)},
		{"FeatSubmitStable", uint64(giouring.FeatSubmitStable), uint64(FeatSubmitStable)},
		{"FeatRWCurPos", uint64(giouring.FeatRWCurPos), uint64(FeatRWCurPos)},
		{"FeatCurPersonality", uint64(giouring.FeatCurPersonality), uint64(FeatCurPersonality)},
		{"FeatFastPoll", uint64(giouring.FeatFastPoll), uint64(FeatFastPoll)},
		{"FeatPoll32Bits", uint64(giouring.FeatPoll32Bits), uint64(FeatPoll32Bits)},
		{"FeatSQPollNonfixed", uint64(giouring.FeatSQPollNonfixed), uint64(FeatSQPollNonfixed)},
		{"FeatExtArg", uint64(giouring.FeatExtArg), uint64(FeatExtArg)},
		{"FeatNativeWorkers", uint64(giouring.FeatNativeWorkers), uint64(FeatNativeWorkers)},
		{"FeatRcrcTags", uint64(giouring.FeatRcrcTags), uint64(FeatRsrcTags)},
		{"FeatCQESkip", uint64(giouring.FeatCQESkip), uint64(FeatCQESkip)},
		{"FeatLinkedFile", uint64(giouring.FeatLinkedFile), uint64(FeatLinkedFile)},
		{"FeatRegRegRing", uint64(giouring.FeatRegRegRing), uint64(FeatRegRegRing)},

		{"EnterGetEvents", uint64(giouring.EnterGetEvents), uint64(EnterGetEvents)},
		{"EnterSQWakeup", uint64(giouring.EnterSQWakeup), uint64(EnterSQWakeup)},
		{"EnterSQWait", uint64(giouring.EnterSQWait), uint64(EnterSQWait)},
		{"EnterExtArg", uint64(giouring.EnterExtArg), uint64(EnterExtArg)},
		{"EnterRegisteredRing", uint64(giouring.EnterRegisteredRing), uint64(EnterRegisteredRing)},

		{"SqeFixedFile", uint64(giouring.SqeFixedFile), uint64(SQEFixedFile)},
		{"SqeIODrain", uint64(giouring.SqeIODrain), uint64(SQEIODrain)},
		{"SqeIOLink", uint64(giouring.SqeIOLink), uint64(SQEIOLink)},
		{"SqeIOHardlink", uint64(giouring.SqeIOHardlink), uint64(SQEIOHardlink)},
		{"SqeAsync", uint64(giouring.SqeAsync), uint64(SQEAsync)},
		{"SqeBufferSelect", uint64(giouring.SqeBufferSelect), uint64(SQEBufferSelect)},
		{"SqeCQESkipSuccess", uint64(giouring.SqeCQESkipSuccess), uint64(SQECQESkipSuccess)},

		{"CQEFBuffer", uint64(giouring.CQEFBuffer), uint64(CQEFlagBuffer)},
		{"CQEFMore", uint64(giouring.CQEFMore), uint64(CQEFlagMore)},
		{"CQEFSockNonempty", uint64(giouring.CQEFSockNonempty), uint64(CQEFlagSockNonempty)},
		{"CQEFNotif", uint64(giouring.CQEFNotif), uint64(CQEFlagNotif)},
		{"CQEBufferShift", uint64(giouring.CQEBufferShift), uint64(CQEBufferShift)},

		{"TimeoutAbs", uint64(giouring.TimeoutAbs), uint64(TimeoutAbs)},
		{"TimeoutUpdate", uint64(giouring.TimeoutUpdate), uint64(TimeoutUpdate)},
		{"TimeoutBoottime", uint64(giouring.TimeoutBoottime), uint64(TimeoutBoottime)},
		{"TimeoutRealtime", uint64(giouring.TimeoutRealtime), uint64(TimeoutRealtime)},
		{"LinkTimeoutUpdate", uint64(giouring.LinkTimeoutUpdate), uint64(TimeoutLinkTimeoutUpdate)},
		{"TimeoutETimeSuccess", uint64(giouring.TimeoutETimeSuccess), uint64(TimeoutETimeSuccess)},
		{"TimeoutMultishot", uint64(giouring.TimeoutMultishot), uint64(TimeoutMultishot)},

		{"PollAddMulti", uint64(giouring.PollAddMulti), uint64(PollAddMulti)},
		{"PollUpdateEvents", uint64(giouring.PollUpdateEvents), uint64(PollUpdateEvents)},
		{"PollUpdateUserData", uint64(giouring.PollUpdateUserData), uint64(PollUpdateUserData)},
		{"PollAddLevel", uint64(giouring.PollAddLevel), uint64(PollAddLevel)},

		{"AsyncCancelAll", uint64(giouring.AsyncCancelAll), uint64(CancelAll)},
		{"AsyncCancelFd", uint64(giouring.AsyncCancelFd), uint64(CancelFD)},
		{"AsyncCancelAny", uint64(giouring.AsyncCancelAny), uint64(CancelAny)},
		{"AsyncCancelFdFixed", uint64(giouring.AsyncCancelFdFixed), uint64(CancelFDFixed)},

		{"RecvsendPollFirst", uint64(giouring.RecvsendPollFirst), uint64(RecvsendPollFirst)},
		{"RecvMultishot", uint64(giouring.RecvMultishot), uint64(RecvMultishot)},
		{"RecvsendFixedBuf", uint64(giouring.RecvsendFixedBuf), uint64(RecvsendFixedBuf)},
		{"SendZCReportUsage", uint64(giouring.SendZCReportUsage), uint64(SendZCReportUsage)},
		{"AcceptMultishot", uint64(giouring.AcceptMultishot), uint64(AcceptMultishot)},
		{"MsgRingCQESkip", uint64(giouring.MsgRingCQESkip), uint64(MsgRingCQESkip)},
		{"MsgRingFlagsPass", uint64(giouring.MsgRingFlagsPass), uint64(MsgRingFlagsPass)},
		{"MsgData", uint64(giouring.MsgData), uint64(msgData)},

		{"RegisterEventFD", uint64(giouring.RegisterEventFD), uint64(RegisterEventfd)},
		{"UnregisterEventFD", uint64(giouring.UnregisterEventFD), uint64(UnregisterEventfd)},
		{"RegisterProbe", uint64(giouring.RegisterProbe), uint64(RegisterProbe)},
		{"RegisterRingFDs", uint64(giouring.RegisterRingFDs), uint64(RegisterRingFDs)},
		{"UnregisterRingFDs", uint64(giouring.UnregisterRingFDs), uint64(UnregisterRingFDs)},
		{"RegisterPbufRing", uint64(giouring.RegisterPbufRing), uint64(RegisterPbufRing)},
		{"UnregisterPbufRing", uint64(giouring.UnregisterPbufRing), uint64(UnregisterPbufRing)},
		{"RegisterSyncCancel", uint64(giouring.RegisterSyncCancel), uint64(RegisterSyncCancel)},
		{"RegisterFileAllocRange", uint64(giouring.RegisterFileAllocRange), uint64(RegisterFileAllocRange)},
	}
	for _, p := range pairs {
		assert.Equal(t, p.theirs, p.our, p.name)
	}
}

// fieldOffsets lists a struct type's field offsets in declaration order, skipping blank
// padding fields.
func fieldOffsets(typ reflect.Type) []uintptr {
	var offs []uintptr
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Name == "_" || f.Name == "_pad2" {
			continue
		}
		offs = append(offs, f.Offset)
	}
	return offs
}

func TestGiouringLayouts(t *testing.T) {
	assert.Equal(t, unsafe.Sizeof(giouring.SubmissionQueueEntry{}), unsafe.Sizeof(SQE{}))
	assert.Equal(t, fieldOffsets(reflect.TypeOf(giouring.SubmissionQueueEntry{})), fieldOffsets(reflect.TypeOf(SQE{})))
	assert.Equal(t, unsafe.Sizeof(giouring.CompletionQueueEvent{}), unsafe.Sizeof(CQE{}))
	assert.Equal(t, fieldOffsets(reflect.TypeOf(giouring.CompletionQueueEvent{})), fieldOffsets(reflect.TypeOf(CQE{})))
	assert.Equal(t, unsafe.Sizeof(giouring.Params{}), unsafe.Sizeof(Params{}))
	assert.Equal(t, unsafe.Sizeof(giouring.SQRingOffsets{}), unsafe.Sizeof(SQRingOffsets{}))
	assert.Equal(t, unsafe.Sizeof(giouring.CQRingOffsets{}), unsafe.Sizeof(CQRingOffsets{}))
	assert.Equal(t, unsafe.Sizeof(giouring.GetEventsArg{}), unsafe.Sizeof(getEventsArg{}))
	assert.Equal(t, unsafe.Sizeof(giouring.ProbeOp{}), unsafe.Sizeof(probeOp{}))
	assert.Equal(t, fieldOffsets(reflect.TypeOf(giouring.BufReg{}))[:3], fieldOffsets(reflect.TypeOf(bufReg{}))[:3])
	assert.Equal(t, unsafe.Sizeof(giouring.BufReg{}), unsafe.Sizeof(bufReg{}))
}

func TestGiouringNOPBothRings(t *testing.T) {
	leakcheck.Check(t)
	theirs, err := giouring.CreateRing(8)
	require.NoError(t, err)
	defer theirs.QueueExit()
	gsqe := theirs.GetSQE()
	require.NotNil(t, gsqe)
	gsqe.PrepareNop()
	gsqe.SetData64(7)
	_, err = theirs.SubmitAndWait(1)
	require.NoError(t, err)
	cqe, err := theirs.PeekCQE()
	require.NoError(t, err)
	assert.Equal(t, uint64(7), cqe.UserData)
	assert.Equal(t, int32(0), cqe.Res)
	theirCQE := *cqe
	theirs.CQESeen(cqe)

	r := newRing(t, 8, nil)
	s := sqe(t, r)
	s.PrepNop()
	s.SetUserData(7)
	_, err = r.SubmitAndWait(1, time.Second)
	require.NoError(t, err)
	var ours [1]CQE
	require.Equal(t, 1, r.PeekCQEs(ours[:]))
	// Same bytes from both rings.
	assert.Equal(t, *(*[16]byte)(unsafe.Pointer(&theirCQE)), *(*[16]byte)(unsafe.Pointer(&ours[0])))

	// And our prepared SQE is byte-identical to giouring's for the same NOP.
	var a giouring.SubmissionQueueEntry
	a.PrepareNop()
	a.SetData64(7)
	var b SQE
	b.PrepNop()
	b.SetUserData(7)
	assert.Equal(t, *(*[64]byte)(unsafe.Pointer(&a)), *(*[64]byte)(unsafe.Pointer(&b)))
}
