# RingMachine: `make run` starts the echo server example, `make test` runs
# the static checks and every test (both backends), `make bench` compares
# servers (bench/), `make bench-go` runs the Go benchmarks.

GO        ?= go
GIOURING  := -tags giouring -ldflags=-checklinkname=0
BENCHTIME ?= 1s

.PHONY: run test fmt-check vet static build cross test-race test-examples-epoll test-process-fds test-giouring test-stress test-hazard hazard-a hazard-b test-fuzz bench-compile bench-module bench-go bench

# The echo server on port 10000 (RINGMACHINE_BACKEND=uring|epoll to choose).
# make run ADDR=host:port moves the example server off the default port.
ADDR ?= 127.0.0.1:10000
run:
	$(GO) run ./examples/echo -addr $(ADDR)

# make test runs every stage even when one fails, announcing each and how
# long it took, and ends with the list of failed stages (exit 1) or
# "all N stages passed".
STAGES := fmt-check vet static build cross test-race test-examples-epoll test-process-fds test-giouring test-stress test-hazard test-fuzz bench-compile bench-module
test:
	@failed=""; n=0; t0=$$(date +%s); \
	for s in $(STAGES); do \
		n=$$((n + 1)); start=$$(date +%s); \
		echo "== make test: stage $$n of $(words $(STAGES)): $$s"; \
		if $(MAKE) --no-print-directory $$s; then \
			echo "== $$s passed in $$(($$(date +%s) - start)) s"; \
		else \
			echo "== $$s FAILED after $$(($$(date +%s) - start)) s"; failed="$$failed $$s"; \
		fi; \
	done; \
	echo "== make test took $$(($$(date +%s) - t0)) s"; \
	if [ -n "$$failed" ]; then echo "== FAILED stages:$$failed"; exit 1; fi; \
	echo "== all $$n stages passed"

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck and deadcode at pinned versions, fetched and built by go run
# (nothing to install by hand; staticcheck v0.8.2 is the newest release and
# works with Go 1.26). STATIC_TAGS adds the stress and giouring test files,
# so helpers only they use count as used. deadcode -test lists the
# functions no main, test, benchmark or example reaches and exits 0: the
# target fails when it lists anything. Both run clean with no allow-list: a
# staticcheck finding is fixed (or, if it is wrong, silenced at its line
# with //lint:ignore CHECK reason), a deadcode finding deleted or reached
# from a test. With empty module and build caches the target took 76 s
# (with go test running alongside), 48 s with the modules downloaded, 9 s
# warm (2026-11-30, 2 cores).
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
DEADCODE    := golang.org/x/tools/cmd/deadcode@v0.52.0
STATIC_TAGS := stress,giouring
static:
	$(GO) run $(STATICCHECK) -tags $(STATIC_TAGS) ./...
	@out="$$($(GO) run $(DEADCODE) -test -tags $(STATIC_TAGS) ./...)" || exit 1; \
	if [ -n "$$out" ]; then echo "deadcode: unreachable functions (delete them, or reach them from a test or example):"; echo "$$out"; exit 1; fi

build:
	CGO_ENABLED=0 $(GO) build ./...

# Keep the module compiling (and go doc working) off Linux.
cross:
	GOOS=darwin $(GO) vet ./...

test-race:
	$(GO) test -race -count=1 -timeout 15m ./...

# The runnable Examples (go doc's) again on the epoll engine: they use the
# default engine, io_uring here. (The example programs' tests already run
# on both.)
test-examples-epoll:
	RINGMACHINE_BACKEND=epoll $(GO) test -count=1 -run '^Example' ./...

test-giouring:
	$(GO) test $(GIOURING) -count=1 ./uring/

# The loop's whole suite again with io_uring connections on process
# descriptors (URingOptions.ProcessFDs) instead of direct ones.
# The rows whose descriptors are process fds on every engine (children,
# pipes, inotify, watched and attached descriptors) are skipped there.
test-process-fds:
	RINGMACHINE_TEST_PROCESS_FDS=1 $(GO) test -count=1 -skip '^TestNetConformance$$/(uring|epoll)/(Popen|WatchFile|AttachPipe|WatchProcess|Watch$$)' ./loop/

# The stress tests only: the rest of the suite runs in test-race (and the
# loop's again in test-process-fds and test-hazard without -race).
test-stress:
	$(GO) test -tags stress -count=1 -timeout 30m -run '^TestStress' ./...

# The hazard, tiny-ring, cross-talk, fault-injection, half-close, EAGAIN
# and paused-flood tests, run over and over: a race that fails one run in
# 20 passes N runs in a row with probability 0.95^N, so N = 60 catches it
# 1 - 0.95^60 = 95.4 % of the time (59 is the least that reaches 95 %).
# TestFaultEcho draws a fresh seed each run besides its fixed ones, so its
# 60 runs also try 60 new fault schedules. TestResetChurn* run 10,000 and
# 4,000 connection cycles a pass, about 5 s: 20 passes catch a
# one-pass-in-20 failure 1 - 0.95^20 = 64 % of the time and a
# one-cycle-in-100,000 race (the rate they were written for) 1 - (1 -
# 1e-5)^280,000 = 94 % of the time; CHURN_COUNT=60 makes the first 95 % too.
# The engine conformance table (internal/enginetest: peer resets, tiny
# buffers, poll-first receives and direct descriptors on both engines' rows;
# its direct peer-reset test loops 200 times inside each pass) and the
# io_uring engine's own tests run ENGINE_COUNT times. The cross-talk,
# half-close and poll-first reset-churn tests also run CHURN_COUNT times on
# io_uring process fds (the default above is direct descriptors, whose
# stranded-receive check differs: a hang-up watch instead of poll(2)), and
# the hazard, reset-churn, fault-injection, half-close, cross-talk and
# paused-flood tests run CHURN_COUNT times with receive bundles
# (RINGMACHINE_TEST_RECV_BUNDLE=1: every io_uring loop on RecvMultishotBundle;
# TestNoCrossTalk's bundle rows run HAZARD_COUNT times with the rest). The
# group hand-off tests (messages racing a stopping target, moved direct
# descriptors and their slot promises) run CHURN_COUNT times, and so do the
# paused TLS echo and the TLS fault-injection echo; the proxy rows whose
# timing varies (two proxies at once, stops and closes racing splices, the
# fault-injected proxies, the example proxy's 64 KiB request-reply rounds,
# where a reply left behind is never pushed out by later bytes) run
# PROXY_COUNT times, and so do the peers that
# leave while their input is still being sent (a child, a Unix socket):
# without the EPIPE handling their last output was lost in 4 runs of 5 or
# more.
#
# The runs go in two halves at once (make -j2; each half's output is
# printed when it ends), split so that each takes about as long: one test
# process uses 1.2-1.5 of the 2 cores, much of the engine table and the
# hand-off tests wait on timers, and two processes at once also vary the
# schedules the races see. `time make test-hazard` took 377-417 s in three
# runs that way against 693 s with the same runs one after another
# (2026-12-02, 2 cores); with the receive-bundle runs added, the stage took
# 395 s in `make test` (2026-12-02).
HAZARD_COUNT ?= 60
CHURN_COUNT  ?= 20
ENGINE_COUNT ?= 3
PROXY_COUNT  ?= 10
test-hazard:
	@$(MAKE) --no-print-directory -j2 --output-sync=target hazard-a hazard-b

hazard-a:
	$(GO) test -count=$(HAZARD_COUNT) -timeout 20m -run '^(TestHazard|TestNoCrossTalk|TestSendRetriesEAGAIN|TestSendOneChunkPerSend|TestURingSendZC)' ./loop/
	RINGMACHINE_TEST_RECV_BUNDLE=1 $(GO) test -count=$(CHURN_COUNT) -timeout 20m -run '^(TestHalfClose|TestFaultEcho|TestPausedFloodAllocates|TestNoCrossTalk)$$' ./loop/
	$(GO) test -count=$(CHURN_COUNT) -timeout 20m -run '^TestResetChurn' ./loop/
	$(GO) test -count=$(CHURN_COUNT) -timeout 10m -run '^TestGroupHandoff' ./loop/

hazard-b:
	$(GO) test -count=$(HAZARD_COUNT) -timeout 20m -run '^(TestFaultEcho|TestHalfClose|TestPausedFloodAllocates)' ./loop/
	$(GO) test -count=$(ENGINE_COUNT) -timeout 20m ./internal/enginetest/ ./uring/engine/
	RINGMACHINE_TEST_PROCESS_FDS=1 $(GO) test -count=$(CHURN_COUNT) -timeout 20m -run '^(TestNoCrossTalk|TestHalfClose|TestResetChurnPollFirst)' ./loop/
	RINGMACHINE_TEST_RECV_BUNDLE=1 $(GO) test -count=$(CHURN_COUNT) -timeout 20m -run '^(TestHazard|TestResetChurn$$)' ./loop/
	$(GO) test -count=$(CHURN_COUNT) -timeout 10m -run '^TestNetConformance$$/(uring|epoll)/TLSServer$$' ./loop/
	$(GO) test -count=$(CHURN_COUNT) -timeout 10m -run '^TestTLSFaultEcho$$' ./loop/
	$(GO) test -count=$(PROXY_COUNT) -timeout 10m -run '^TestNetConformance$$/(uring|epoll)/Proxy(32MB|Order|AfterHeader|Stop|StopInFlight|TargetUnbound|TargetClosedInFlight|ToN|HalfClose|TLS)$$|^TestProxyFaults$$' ./loop/
	$(GO) test -count=$(PROXY_COUNT) -timeout 10m -run '^TestNetConformance$$/(uring|epoll)/(PopenIgnoresInput|PeerStopsReading)$$' ./loop/
	$(GO) test -count=$(PROXY_COUNT) -timeout 10m -run '^TestProxyPingPong$$' ./examples/proxy/

# Every fuzz target from its seeds and testdata/fuzz corpus, for a count of
# executions sized to 2-17 s each on 2 cores, the build included (eight
# targets: 44-119 s in `make test`, 2026-12-02; the slow runs spent up to
# 15 s with the httpd fuzzer minimizing a new input at 0 execs/s); FUZZTIME=30s
# (or 1000000x) overrides them all. A count, not a
# duration: with -fuzztime as a duration, Go 1.26's fuzz coordinator can
# report "context deadline exceeded" as a failure at the deadline with no
# failing input (go.dev/issue/75804, fixed in Go 1.27); it did once here, on
# FuzzLineReader, 2026-11-30. A real failure leaves its input in the
# package's testdata/fuzz, to be committed with the fix.
FUZZTIME ?=
fuzztime = $(if $(FUZZTIME),$(FUZZTIME),$(1))
test-fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseAddr$$' -fuzztime $(call fuzztime,75000x) ./conn/
	$(GO) test -run '^$$' -fuzz '^FuzzLineReader$$' -fuzztime $(call fuzztime,75000x) ./conn/
	$(GO) test -run '^$$' -fuzz '^FuzzLineReaderModes$$' -fuzztime $(call fuzztime,75000x) ./conn/
	$(GO) test -run '^$$' -fuzz '^FuzzHeap$$' -fuzztime $(call fuzztime,50000x) ./timers/
	$(GO) test -run '^$$' -fuzz '^FuzzCQEErr$$' -fuzztime $(call fuzztime,75000x) ./uring/
	$(GO) test -run '^$$' -fuzz '^FuzzRESP$$' -fuzztime $(call fuzztime,50000x) ./examples/redis/
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(call fuzztime,40000x) ./examples/httpd/
	$(GO) test -run '^$$' -fuzz '^FuzzInotifyEvents$$' -fuzztime $(call fuzztime,50000x) ./loop/

# Benchmarks run once so they compile and do not rot.
bench-compile:
	$(GO) test -run '^$$' -bench . -benchtime 1x -count=1 ./...

# The bench module (its own go.mod, so gnet stays out of the library's) must
# keep building and its load generator's checks must pass.
bench-module:
	cd bench && $(GO) vet ./... && $(GO) test -count=1 ./...

bench-go:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count=1 ./...

# Side-by-side servers (RingMachine uring/epoll, Go net, gnet, redis-server,
# Ruby EventMachine) under loadgen, wrk and redis-benchmark; see bench/README.md.
# BENCHFLAGS=-capped caps the server at 30 % of a CPU; LIBURING_ECHO=FILE.c
# adds a C liburing echo server built from that source as a peer.
bench:
	bash bench/deps.sh
	cd bench && $(GO) run ./run -quick $(BENCHFLAGS)
