#!/bin/bash
# proxyprof.sh ENGINE [PROXY FLAGS...]: where the CPU of examples/proxy goes
# under the proxy scenario's load (16 connections x 64 KiB through the proxy
# to an echo backend): perf record -e cpu-clock -g on the proxy for 2 s, then
# the top symbols. ENGINE is uring or epoll; flags go to the proxy (-copy,
# -splice-worker). The proxy runs on CPU 0, the backend and loadgen on CPU 1.
# Needs the binaries `go run ./run` builds in bench/bin and perf.
set -euo pipefail
cd "$(dirname "$0")"
engine=$1
shift
data=$(mktemp /tmp/proxyprof.XXXXXX)
RINGMACHINE_BACKEND=uring taskset -c 1 bin/rm-echo -addr 127.0.0.1:17000 -loops 1 >/dev/null 2>&1 &
backend=$!
RINGMACHINE_BACKEND=$engine taskset -c 0 bin/rm-proxy -addr 127.0.0.1:17001 -to 127.0.0.1:17000 "$@" >/dev/null 2>&1 &
proxy=$!
trap 'kill $proxy $backend 2>/dev/null; rm -f "$data"' EXIT
sleep 0.3
taskset -c 1 bin/loadgen -addr 127.0.0.1:17001 -c 16 -s 65536 -p 1 -d 4s >/dev/null &
load=$!
sleep 0.5
perf record -e cpu-clock -g -p "$proxy" -o "$data" -- sleep 2 >/dev/null 2>&1
wait "$load"
perf report -i "$data" --no-children --sort sym --stdio 2>/dev/null | grep -E '^ +[0-9]' | head -40
