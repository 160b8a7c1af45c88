# RingMachine: `make run` starts the echo server example, `make test` runs
# every test (both backends), `make bench` compares servers
# (bench/), `make bench-go` runs the Go benchmarks.

GO        ?= go
GIOURING  := -tags giouring -ldflags=-checklinkname=0
BENCHTIME ?= 1s

.PHONY: run test fmt-check vet build cross test-race test-giouring test-stress bench-compile bench-module bench-go bench

# The echo server on port 10000 (RINGMACHINE_BACKEND=uring|epoll to choose).
run:
	$(GO) run ./examples/echo -addr 127.0.0.1:10000

test: fmt-check vet build cross test-race test-giouring test-stress bench-compile bench-module

fmt-check:
	@out="$$(gofmt -l .)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

build:
	CGO_ENABLED=0 $(GO) build ./...

# Keep the module compiling (and go doc working) off Linux.
cross:
	GOOS=darwin $(GO) vet ./...

test-race:
	$(GO) test -race -count=1 -timeout 15m ./...

test-giouring:
	$(GO) test $(GIOURING) -count=1 ./uring/

test-stress:
	$(GO) test -tags stress -count=1 -timeout 30m ./...

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
# BENCHFLAGS=-capped caps the server at 30 % of a CPU.
bench:
	bash bench/deps.sh
	cd bench && $(GO) run ./run -quick $(BENCHFLAGS)
