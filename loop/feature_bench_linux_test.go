package loop_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ringmachine/ringmachine/internal/testutil"
	"github.com/ringmachine/ringmachine/loop"
)

// featureCase is one side of an io_uring feature A/B.
type featureCase struct {
	name string
	opts loop.Options
	hook func() (restore func()) // set for the case's run, if not nil
}

// BenchmarkURingFeatures measures each io_uring feature on and off in one
// run, with the ping-pong echo of BenchmarkEcho (64 connections; req/s):
//
//   - backend: io_uring vs epoll;
//   - recv: multishot RECV on the provided-buffer ring vs single-shot RECV
//     into a per-connection buffer (URingOptions.Recv);
//   - sendzc: SEND/SENDMSG vs SEND_ZC/SENDMSG_ZC for every send
//     (URingOptions.SendZC = 1) at 64 B, 4 KB and 64 KB;
//   - setup: SINGLE_ISSUER|DEFER_TASKRUN vs COOP_TASKRUN vs no taskrun flags
//     (URingOptions.Setup);
//   - submit: one io_uring_enter per iteration vs one per operation
//     (URingOptions.Submit);
//   - direct: connections as process fds (URingOptions.ProcessFDs) vs
//     io_uring direct descriptors at 64 B and 4 KB;
//   - bundle: multishot receives of one buffer per completion vs receive
//     bundles (RecvMultishotBundle) at 64 B and 64 KB;
//   - zcfixed: zero-copy sends from send slabs registered as fixed
//     buffers vs unregistered (URingOptions.SendZC = 1 both) at 4 KB and
//     16 KB, where a reply is one chunk;
//   - cqbatch: up to 256 completions per engine Wait (the default), each
//     Wait one io_uring_enter, vs up to 8;
//   - vectored: every queued chunk in one SENDMSG (the default) vs a SEND of
//     one chunk at a time, at 64 KB (four chunks of 16 KiB).
//
// Compare the sides of one feature within one run (README "io_uring
// feature A/B"); run with -benchtime 20x -count 3 or more.
func BenchmarkURingFeatures(b *testing.B) {
	testutil.RequireURing(b)
	const conns = 64
	u := loop.Options{Backend: loop.URing}
	with := func(f func(o *loop.Options)) loop.Options { o := u; f(&o); return o }
	groups := []struct {
		name  string
		sizes []int
		cases []featureCase
	}{
		{"backend", []int{64}, []featureCase{
			{name: "uring", opts: u},
			{name: "epoll", opts: loop.Options{Backend: loop.Epoll}},
		}},
		{"recv", []int{64, 4096}, []featureCase{
			{name: "multishot", opts: u},
			{name: "singleshot", opts: with(func(o *loop.Options) { o.URing.Recv = loop.RecvSingleShot })},
		}},
		{"sendzc", []int{64, 4096, 65536}, []featureCase{
			{name: "off", opts: u},
			{name: "on", opts: with(func(o *loop.Options) { o.URing.SendZC = 1 })},
		}},
		{"setup", []int{64}, []featureCase{
			{name: "defer-taskrun", opts: with(func(o *loop.Options) { o.URing.Setup = loop.SetupDeferTaskrun })},
			{name: "coop-taskrun", opts: with(func(o *loop.Options) { o.URing.Setup = loop.SetupCoopTaskrun })},
			{name: "none", opts: with(func(o *loop.Options) { o.URing.Setup = loop.SetupNoTaskrunFlags })},
		}},
		{"submit", []int{64}, []featureCase{
			{name: "batch", opts: u},
			{name: "per-op", opts: with(func(o *loop.Options) { o.URing.Submit = loop.SubmitPerOp })},
		}},
		{"minwait", []int{64}, []featureCase{
			{name: "off", opts: u},
			{name: "20us", opts: with(func(o *loop.Options) { o.URing.MinWait = 20 * time.Microsecond })},
			{name: "100us", opts: with(func(o *loop.Options) { o.URing.MinWait = 100 * time.Microsecond })},
		}},
		{"direct", []int{64, 4096}, []featureCase{
			{name: "process-fds", opts: with(func(o *loop.Options) { o.URing.ProcessFDs = true })},
			{name: "direct", opts: u},
		}},
		{"bundle", []int{64, 65536}, []featureCase{
			{name: "off", opts: u},
			{name: "on", opts: with(func(o *loop.Options) { o.URing.Recv = loop.RecvMultishotBundle })},
		}},
		{"zcfixed", []int{4096, 16384}, []featureCase{
			{name: "registered", opts: with(func(o *loop.Options) { o.URing.SendZC = 1 })},
			{name: "unregistered", opts: with(func(o *loop.Options) { o.URing.SendZC = 1 }), hook: loop.SetTestHookNoFixedSendBuffers},
		}},
		{"cqbatch", []int{64}, []featureCase{
			{name: "256", opts: u},
			{name: "8", opts: u, hook: func() func() { return loop.SetTestHookCompletionBatch(8) }},
		}},
		{"vectored", []int{65536}, []featureCase{
			{name: "all-chunks", opts: u},
			{name: "one-chunk", opts: u, hook: func() func() { return loop.SetTestHookSendBufs(1) }},
		}},
	}
	for _, g := range groups {
		b.Run(g.name, func(b *testing.B) {
			for _, size := range g.sizes {
				rounds := 100
				if size >= 65536 {
					rounds = 10 // 64 connections x 10 x 64 KB = 40 MiB each way
				}
				for _, fc := range g.cases {
					b.Run(fmt.Sprintf("%s/%dB", fc.name, size), func(b *testing.B) {
						if fc.hook != nil {
							defer fc.hook()()
						}
						srv := startLoopServerOpts(b, fc.opts)
						defer srv.stop()
						pingPong(b, srv.addr, conns, rounds, size)
					})
				}
			}
		})
	}
}
