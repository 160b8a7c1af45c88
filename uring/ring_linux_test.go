package uring

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"

	"github.com/ringmachine/ringmachine/internal/leakcheck"
	"github.com/ringmachine/ringmachine/internal/sigtest"
)

func TestNewReportsGrantedSetup(t *testing.T) {
	r := newRing(t, 64, nil)
	t.Logf("flags=%v features=%v ringfd=%v sq=%d cq=%d", r.Flags(), r.Features(), r.RingFDRegistered(), r.SQEntries(), r.CQEntries())
	assert.Equal(t, uint32(64), r.SQEntries())
	assert.GreaterOrEqual(t, r.CQEntries(), 4*r.SQEntries())
	assert.True(t, r.Flags().Has(SetupCQSize))
	assert.True(t, r.Features().Has(FeatSingleMmap|FeatNoDrop))
	if r.Flags().Has(SetupSingleIssuer) {
		assert.True(t, r.Flags().Has(SetupDeferTaskrun))
		assert.True(t, r.RingFDRegistered())
	}
	assert.Contains(t, r.Flags().String(), "CQSIZE")
	assert.Contains(t, r.Features().String(), "EXT_ARG")
}

func TestNewOptions(t *testing.T) {
	t.Run("NoAutoFlags", func(t *testing.T) {
		r := newRing(t, 8, &Options{NoAutoFlags: true, CQEntries: 64, NoRegisterRingFD: true})
		assert.Equal(t, SetupCQSize, r.Flags())
		assert.Equal(t, uint32(64), r.CQEntries())
		assert.False(t, r.RingFDRegistered())
		nopRoundTrip(t, r)
	})
	t.Run("Coop", func(t *testing.T) {
		r := newRing(t, 8, &Options{NoAutoFlags: true, Flags: SetupCoopTaskrun | SetupTaskrunFlag})
		assert.True(t, r.Flags().Has(SetupCoopTaskrun|SetupTaskrunFlag))
		nopRoundTrip(t, r)
	})
	t.Run("DeferWithoutTaskrunFlag", func(t *testing.T) {
		r := newRing(t, 8, &Options{NoAutoFlags: true, Flags: SetupSingleIssuer | SetupDeferTaskrun})
		require.NoError(t, r.RegisterRingFD())
		nopRoundTrip(t, r)
	})
	t.Run("UnsupportedFlag", func(t *testing.T) {
		_, err := New(8, &Options{Flags: SetupSQPoll})
		assert.ErrorIs(t, err, errors.ErrUnsupported)
	})
}

func TestNewErrno(t *testing.T) {
	leakcheck.Check(t)
	_, err := New(0, nil)
	require.ErrorIs(t, err, unix.EINVAL)
	// Without CLAMP, an oversized CQ is rejected by io_uring_setup itself.
	_, err = New(8, &Options{NoAutoFlags: true, CQEntries: 1 << 30})
	require.ErrorIs(t, err, unix.EINVAL)
	assert.Contains(t, err.Error(), "uring: io_uring_setup: ")
}

func TestFeatureError(t *testing.T) {
	var err error = &FeatureError{Feature: "IORING_FEAT_EXT_ARG"}
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	assert.Equal(t, "uring: kernel lacks IORING_FEAT_EXT_ARG", err.Error())
	var fe *FeatureError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "IORING_FEAT_EXT_ARG", fe.Feature)

	r := newRing(t, 8, nil)
	r.features &^= FeatExtArg // pretend the kernel predates 5.11
	_, err = r.SubmitAndWait(1, time.Millisecond)
	require.ErrorAs(t, err, &fe)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	_, err = r.SubmitAndWait(0, 0) // no timeout: fine without EXT_ARG
	assert.NoError(t, err)
}

func TestCloseTwice(t *testing.T) {
	leakcheck.Check(t)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r, err := New(8, nil)
	require.NoError(t, err)
	require.NoError(t, r.Close())
	assert.ErrorIs(t, r.Close(), ErrClosed)
	_, ok := r.GetSQE()
	assert.False(t, ok)
	_, err = r.Submit()
	assert.ErrorIs(t, err, ErrClosed)
	_, err = r.SubmitAndWait(1, time.Second)
	assert.ErrorIs(t, err, ErrClosed)
	assert.Zero(t, r.PeekCQEs(make([]CQE, 1)))
	_, err = r.Probe()
	assert.ErrorIs(t, err, ErrClosed)
}

func nopRoundTrip(t *testing.T, r *Ring) {
	t.Helper()
	s := sqe(t, r)
	s.PrepNop()
	s.SetUserData(42)
	n, err := r.SubmitAndWait(1, time.Second)
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	var cqes [4]CQE
	require.Equal(t, 1, r.PeekCQEs(cqes[:]))
	assert.Equal(t, CQE{UserData: 42}, cqes[0])
	assert.NoError(t, cqes[0].Err())
}

func TestNop(t *testing.T) {
	r := newRing(t, 8, nil)
	nopRoundTrip(t, r)
	// Submit then peek works too: NOPs complete inline, without task work.
	for i := range 3 {
		s := sqe(t, r)
		s.PrepNop()
		s.SetUserData(uint64(i))
	}
	n, err := r.Submit()
	require.NoError(t, err)
	assert.Equal(t, 3, n)
	cqes := reap(t, r, 3)
	for i, c := range cqes {
		assert.Equal(t, uint64(i), c.UserData)
	}
}

func TestSQFull(t *testing.T) {
	r := newRing(t, 4, nil)
	assert.Equal(t, uint32(4), r.SQSpaceLeft())
	for i := range 4 {
		s := sqe(t, r)
		s.PrepNop()
		s.SetUserData(uint64(i))
	}
	s, ok := r.GetSQE()
	assert.False(t, ok)
	assert.Nil(t, s)
	assert.Zero(t, r.SQSpaceLeft())
	n, err := r.Submit()
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.Equal(t, uint32(4), r.SQSpaceLeft())
	reap(t, r, 4)
}

func TestCQOverflowWithoutLoss(t *testing.T) {
	r := newRing(t, 4, nil)
	require.True(t, r.Features().Has(FeatNoDrop))
	cq := int(r.CQEntries())
	total := 3*cq + 5
	sawOverflow := false
	for i := 0; i < total; {
		for ; i < total && r.SQSpaceLeft() > 0; i++ {
			s := sqe(t, r)
			s.PrepNop()
			s.SetUserData(uint64(i))
		}
		_, err := r.Submit()
		require.NoError(t, err)
		if r.sqFlags.Load()&sqCQOverflow != 0 {
			sawOverflow = true
		}
	}
	assert.True(t, sawOverflow, "CQ never overflowed")
	assert.Zero(t, r.cqOverflow.Load(), "kernel dropped CQEs")
	cqes := reap(t, r, total)
	for i, c := range cqes {
		assert.Equal(t, uint64(i), c.UserData, "CQE %d out of order", i)
	}
	var extra [4]CQE
	assert.Zero(t, r.PeekCQEs(extra[:]))
}

func TestSubmitAndWaitTimeout(t *testing.T) {
	r := newRing(t, 8, nil)
	start := time.Now()
	n, err := r.SubmitAndWait(1, 50*time.Millisecond)
	elapsed := time.Since(start)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.GreaterOrEqual(t, elapsed, 40*time.Millisecond)
	assert.Less(t, elapsed, 2*time.Second)

	start = time.Now()
	_, err = r.SubmitAndWait(1, 0)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), time.Second)
}

// TestSubmitAndWaitSignals: signals delivered to the waiting thread every
// 10 ms for 1 s interrupt a 300 ms timed wait (EINTR) over and over. The
// wait must go on for what is left of its time: not end early, and not start
// its whole timeout again after each signal (it would then last until the
// signals stop).
func TestSubmitAndWaitSignals(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	r := newRing(t, 8, nil)
	sigtest.CheckTimedWait(t, 300*time.Millisecond, func(d time.Duration) (int, error) {
		return r.SubmitAndWait(1, d)
	})
}

func TestProbe(t *testing.T) {
	r := newRing(t, 8, nil)
	p, err := r.Probe()
	require.NoError(t, err)
	t.Logf("last op %v", p.LastOp())
	for _, op := range []Op{OpNop, OpRead, OpRecv, OpSend, OpAccept, OpConnect, OpTimeout, OpLinkTimeout,
		OpAsyncCancel, OpClose, OpSplice, OpShutdown, OpMsgRing, OpSendZC, OpWritev, OpSendmsg, OpPollAdd} {
		assert.True(t, p.Supported(op), "%v", op)
	}
	assert.GreaterOrEqual(t, p.LastOp(), OpSendZC)
	assert.False(t, p.Supported(Op(250)))
	assert.NoError(t, p.Require(OpNop, OpRecvMultishot))
	err = p.Require(OpNop, Op(250))
	var fe *FeatureError
	require.ErrorAs(t, err, &fe)
	assert.Equal(t, "IORING_OP_250", fe.Feature)
	assert.ErrorIs(t, err, errors.ErrUnsupported)
	if p.LastOp() >= OpLast {
		t.Logf("kernel knows opcodes past %v", OpLast-1)
	}
}

func TestEventfdWakesBlockedWait(t *testing.T) {
	for _, mode := range []string{"read", "poll"} {
		t.Run(mode, func(t *testing.T) {
			r := newRing(t, 8, nil)
			efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
			require.NoError(t, err)
			closeOnCleanup(t, efd)
			buf := make([]byte, 8)
			s := sqe(t, r)
			if mode == "read" {
				s.PrepRead(efd, buf, ^uint64(0))
			} else {
				s.PrepPollAdd(efd, unix.POLLIN)
			}
			s.SetUserData(7)
			done := make(chan struct{})
			go func() {
				defer close(done)
				time.Sleep(30 * time.Millisecond)
				_, _ = unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
			}()
			n, err := r.SubmitAndWait(1, -1)
			require.NoError(t, err)
			assert.Equal(t, 1, n)
			cqes := reap(t, r, 1)
			<-done
			assert.Equal(t, uint64(7), cqes[0].UserData)
			if mode == "read" {
				assert.Equal(t, int32(8), cqes[0].Res)
				assert.Equal(t, byte(1), buf[0])
			} else {
				assert.NotZero(t, cqes[0].Res&unix.POLLIN)
			}
		})
	}
}

func TestRegisterEventfd(t *testing.T) {
	r := newRing(t, 8, nil)
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	require.NoError(t, err)
	closeOnCleanup(t, efd)
	require.NoError(t, r.RegisterEventfd(efd))
	assert.ErrorIs(t, r.RegisterEventfd(efd), unix.EBUSY)

	s := sqe(t, r)
	s.PrepNop()
	reap(t, r, 1)
	var v [8]byte
	n, err := unix.Read(efd, v[:])
	require.NoError(t, err)
	assert.Equal(t, 8, n)
	assert.NotZero(t, v[0])

	require.NoError(t, r.UnregisterEventfd())
	assert.ErrorIs(t, r.UnregisterEventfd(), unix.ENXIO)
	s = sqe(t, r)
	s.PrepNop()
	reap(t, r, 1)
	_, err = unix.Read(efd, v[:])
	assert.ErrorIs(t, err, unix.EAGAIN)
}

func TestTimespec(t *testing.T) {
	ts := NewTimespec(1500 * time.Millisecond)
	assert.Equal(t, Timespec{Sec: 1, Nsec: 500_000_000}, ts)
	assert.Equal(t, 1500*time.Millisecond, ts.Duration())
	ts.Set(-time.Second)
	assert.Equal(t, Timespec{}, ts)
}

func TestStrings(t *testing.T) {
	assert.Equal(t, "SINGLE_ISSUER|DEFER_TASKRUN", (SetupSingleIssuer | SetupDeferTaskrun).String())
	assert.Equal(t, "0", SetupFlags(0).String())
	assert.Equal(t, "EXT_ARG|0x80000000", (FeatExtArg | 1<<31).String())
	assert.Equal(t, "IO_LINK|BUFFER_SELECT", (SQEIOLink | SQEBufferSelect).String())
	assert.Equal(t, "GETEVENTS|EXT_ARG", (EnterGetEvents | EnterExtArg).String())
	assert.Equal(t, "IORING_OP_RECV", OpRecv.String())
	assert.Equal(t, "IORING_OP_PIPE", OpPipe.String())
	assert.Len(t, opNames, int(OpLast))
}

// TestSubmitAndWaitMin: with one completion posted and eight asked for,
// the wait ends once the minimum wait has passed, long before the overall
// timeout (or at once with no overall timeout... after the minimum);
// eight completions end it at once; with none, the overall timeout ends it.
func TestSubmitAndWaitMin(t *testing.T) {
	r := newRing(t, 16, nil)
	if !r.Features().Has(FeatMinTimeout) {
		_, err := r.SubmitAndWaitMin(8, time.Second, time.Millisecond)
		var fe *FeatureError
		require.ErrorAs(t, err, &fe)
		t.Skip("kernel without IORING_FEAT_MIN_TIMEOUT")
	}
	nops := func(n int) {
		for range n {
			s, ok := r.GetSQE()
			require.True(t, ok)
			s.PrepNop()
		}
	}
	drain := func() int {
		return r.PeekCQEs(make([]CQE, 64))
	}
	for _, timeout := range []time.Duration{5 * time.Second, -1} {
		nops(1)
		start := time.Now()
		_, err := r.SubmitAndWaitMin(8, timeout, 30*time.Millisecond)
		elapsed := time.Since(start)
		require.NoError(t, err)
		assert.Equal(t, 1, drain())
		assert.GreaterOrEqual(t, elapsed, 20*time.Millisecond, "waited for more (timeout %v)", timeout)
		assert.Less(t, elapsed, 2*time.Second, "returned after the minimum (timeout %v)", timeout)
	}

	nops(8)
	start := time.Now()
	_, err := r.SubmitAndWaitMin(8, 5*time.Second, time.Second)
	require.NoError(t, err)
	assert.Less(t, time.Since(start), 500*time.Millisecond, "eight completions end the wait")
	assert.Equal(t, 8, drain())

	start = time.Now()
	_, err = r.SubmitAndWaitMin(1, 50*time.Millisecond, 10*time.Millisecond)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, time.Since(start), 40*time.Millisecond, "nothing: the overall timeout")
}
