# RingMachine: `make run` starts the echo server example, `make test` runs
# every test (both backends), `make bench` measures.

GO        ?= go
GIOURING  := -tags giouring -ldflags=-checklinkname=0
BENCHTIME ?= 1s

.PHONY: run test fmt-check vet build cross test-race test-giouring test-stress bench-compile bench

# The echo server on port 10000 (RINGMACHINE_BACKEND=uring|epoll to choose).
run:
	$(GO) run ./examples/echo -addr 127.0.0.1:10000

test: fmt-check vet build cross test-race test-giouring test-stress bench-compile

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

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -count=1 ./...
