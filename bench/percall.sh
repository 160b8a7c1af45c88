#!/usr/bin/env bash
# Per-request costs of one echo (or HTTP) server under capped load: system calls by
# kind, context switches and CPU time per request, counted by `perf stat` on
# the server process while bench/bin/loadgen (or wrk) drives it.
#
#   bench/percall.sh NAME SERVER-COMMAND...    (run from the repository root,
#                                              after `make bench` built bench/bin)
#
# The server command gets `-addr 127.0.0.1:PORT` appended; it runs on CPU 0
# in a cgroup capped at QUOTA % of that CPU (default 30), so the server, not
# the load tool, is the bottleneck; loadgen runs on CPU 1 with CONNS
# connections (64) of SIZE-byte messages (64), PIPE of them in flight per
# connection (1), for 4 s, and perf counts the
# 2 s in the middle. LOAD=wrk drives an HTTP server with wrk instead (one
# thread, CONNS connections, plaintext GET /; wrk's whole run is the req/s);
# WRK_CLOSE=1 sends "Connection: close", so every request is a new
# connection (the server closes it after its reply).
# LOAD=redis drives a RESP server with redis-benchmark instead: GET of a key
# set beforehand to redis-benchmark's 3-byte value, CONNS connections (50,
# as bench/run), PIPE commands in flight per connection, for 4 s; its
# overall rate is the req/s.
# Needs root (cgroup, perf). Examples:
#
#   RINGMACHINE_BACKEND=epoll bench/percall.sh epoll bench/bin/rm-echo -loops 1
#   bench/percall.sh gnet bench/bin/peer -impl gnet -proto echo
#   LOAD=wrk bench/percall.sh httpd bench/bin/rm-httpd -loops 1
#   LOAD=redis PIPE=16 bench/percall.sh redis bench/bin/rm-redis -loops 1
#   LOAD=redis bench/percall.sh redis-server sh -c 'exec redis-server --save "" --port ${2##*:}' -
#
# USER_SPLIT=1 also samples the server (perf record) and prints the share of
# its CPU spent in user space, and that share in µs per request, split into
# the server's own code, the Go runtime with the system call wrappers, and
# shared libraries (libc, liburing).
#
# RECORD=FILE also records the server's samples with call graphs over the
# same 2 s (perf record -g, event RECORD_EVENT, default cpu-clock, at
# RECORD_FREQ samples a second, default perf's) into FILE for perf report,
# perf annotate or perf script; RECORD_EVENT=sched:sched_switch records its
# context switches instead.
#
# EVENTS=LIST adds perf events to the count, comma-separated, e.g.
# EVENTS=io_uring:io_uring_submit_req,io_uring:io_uring_complete for the
# ring operations submitted and completed per request.
#
# CLOCK_READS=1 (Go servers) also counts the server's clock reads with
# uprobes on runtime.nanotime1 (one vDSO clock_gettime: time.Since, the
# runtime's own reads) and time.now (two: wall and monotonic, time.Now).
# A uprobe costs a few µs, so req/s and CPU figures of such a run are not
# comparable with others; the counts per request are.
set -eu
name=$1
shift
quota=${QUOTA:-30}
cg=""
if [ -d /sys/fs/cgroup/cpu ] && [ -w /sys/fs/cgroup/cpu ]; then # cgroup v1
	cg=/sys/fs/cgroup/cpu/ringmachine-percall
	mkdir -p "$cg"
	echo 100000 >"$cg/cpu.cfs_period_us"
	echo $((quota * 1000)) >"$cg/cpu.cfs_quota_us"
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then # cgroup v2
	cg=/sys/fs/cgroup/ringmachine-percall
	mkdir -p "$cg"
	echo "$((quota * 1000)) 100000" >"$cg/cpu.max"
else
	echo "percall.sh: no writable cgroup: running uncapped" >&2
fi
# Below the kernel's ephemeral ports (ip_local_port_range starts at 32768 by
# default), so that no client socket of an earlier run holds the port.
port=$((20000 + RANDOM % 12000))
lg=$(mktemp)
pf=$(mktemp)
srvlog=$(mktemp)
taskset -c 0 "$@" -addr 127.0.0.1:$port >"$srvlog" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -f "$lg" "$pf" "$srvlog"' EXIT
[ -n "$cg" ] && echo $pid >"$cg/cgroup.procs"
up=""
for _ in $(seq 100); do
	if (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
		up=1
		break
	fi
	kill -0 $pid 2>/dev/null || break # the server exited
	sleep 0.1
done
if [ -z "$up" ]; then
	echo "percall.sh: $name: the server is not listening on 127.0.0.1:$port; its output:" >&2
	cat "$srvlog" >&2
	exit 1
fi
sleep 0.3
case "${LOAD:-loadgen}" in
wrk)
	hdr=()
	[ -z "${WRK_CLOSE:-}" ] || hdr=(-H "Connection: close")
	taskset -c 1 wrk -t1 -c"${CONNS:-64}" -d4s "${hdr[@]}" "http://127.0.0.1:$port/" >"$lg" 2>&1 &
	;;
redis)
	redis-cli -h 127.0.0.1 -p $port set key:__rand_int__ xxx >/dev/null
	taskset -c 1 timeout -s INT 4 redis-benchmark -h 127.0.0.1 -p $port -t get \
		-c "${CONNS:-50}" -P "${PIPE:-1}" -l -q >"$lg" 2>&1 &
	;;
*)
	taskset -c 1 bench/bin/loadgen -addr 127.0.0.1:$port -c "${CONNS:-64}" -s "${SIZE:-64}" -p "${PIPE:-1}" -d 4s -warmup 500ms >"$lg" 2>&1 &
	;;
esac
lgpid=$!
sleep 1
ev=raw_syscalls:sys_enter,context-switches,task-clock
for s in read write sendmsg recvfrom writev epoll_wait epoll_ctl futex nanosleep io_uring_enter tgkill; do
	ev=$ev,syscalls:sys_enter_$s
done
[ -n "${EVENTS:-}" ] && ev=$ev,$EVENTS
if [ -n "${CLOCK_READS:-}" ]; then
	bin=$(command -v "$1")
	grp=rmclock$$
	if ! perf probe -q -x "$bin" -a "$grp:nanotime1=runtime.nanotime1" -a "$grp:time_now=time.now" >/dev/null 2>&1; then
		echo "percall.sh: CLOCK_READS: perf probe on $bin failed (uprobes, or not a Go binary)" >&2
		exit 1
	fi
	trap 'kill $pid 2>/dev/null || true; rm -f "$lg" "$pf" "$srvlog"; perf probe -q -d "$grp:*" >/dev/null 2>&1 || true' EXIT
	ev=$ev,$grp:nanotime1,$grp:time_now
fi
pr=""
if [ -n "${USER_SPLIT:-}" ]; then
	# Sampled alongside: the share of the server's CPU spent in user space.
	pr=$(mktemp)
	perf record -q -e cpu-clock -F 4000 -o "$pr" -p $pid -- sleep 2 >/dev/null 2>&1 &
	prpid=$!
fi
recpid=""
if [ -n "${RECORD:-}" ]; then
	perf record -q -g -e "${RECORD_EVENT:-cpu-clock}" ${RECORD_FREQ:+-F "$RECORD_FREQ"} -o "$RECORD" -p $pid -- sleep 2 >/dev/null 2>&1 &
	recpid=$!
fi
perf stat -x, -e "$ev" -p $pid -- sleep 2 2>"$pf"
[ -n "$pr" ] && wait $prpid
[ -n "$recpid" ] && wait $recpid
lgrc=0
wait $lgpid || lgrc=$?
if [ $lgrc -ne 0 ] && [ "${LOAD:-}" != redis ]; then # timeout ends redis-benchmark
	echo "percall.sh: $name: the load tool failed (exit $lgrc); its output:" >&2
	cat "$lg" >&2
	exit 1
fi
case "${LOAD:-loadgen}" in
wrk) rps=$(awk '/^Requests\/sec/ { print $2 }' "$lg") ;;
redis) rps=$(tr '\r' '\n' <"$lg" | grep -o 'rps=[0-9.]* (overall: [0-9.]*' | tail -1 | awk '{ print $3 }') ;;
*) rps=$(grep -o '"rps":[0-9.]*' "$lg" | cut -d: -f2) ;;
esac
if [ -z "$rps" ]; then
	echo "percall.sh: $name: no req/s in the load tool's output:" >&2
	cat "$lg" >&2
	exit 1
fi
echo "== $name: $rps req/s"
# task-clock is in ms: per request it is shown in µs.
awk -F, -v rps="$rps" '$1 ~ /^[0-9.]+$/ && $1 > 0 {
	v = $1 / (rps * 2); unit = "/req"
	if ($3 == "task-clock") { v *= 1000; unit = "µs CPU/req" }
	printf "  %-34s %12.0f  %8.3f %s\n", $3, $1, v, unit }' "$pf"
if [ -n "$pr" ]; then
	# user µs/req = CPU µs/req x the share of samples outside the kernel.
	# The user share is then split by symbol: the Go runtime and the system
	# call wrappers (runtime., internal/runtime/, syscall., x/sys, vDSO; also
	# runtime.memmove, the copies the server asks for), shared libraries
	# (libc, liburing), and the rest: the server's own code.
	perf report -q -i "$pr" --no-children --sort dso,sym -g none 2>/dev/null |
		awk -v rps="$rps" -v tc="$(awk -F, '$3 == "task-clock" { print $1 }' "$pf")" '
			{ p = $1; sub(/%/, "", p); dso = $2; sym = $4
			  if (dso == "[kernel.kallsyms]") next
			  u += p
			  if (dso == "[vdso]" || sym ~ /^(runtime\.|internal\/runtime\/|syscall\.|golang\.org\/x\/sys\/)/) rt += p
			  else if (dso ~ /^(libc|liburing|ld-linux)/) lib += p
			  else app += p }
			function us(x) { return x / 100 * tc * 1000 / (rps * 2) }
			END {
			  printf "  %-34s %12.1f  %8.3f µs/req\n", "user-space share (%)", u, us(u)
			  printf "  %-34s %12.1f  %8.3f µs/req\n", "  server code (%)", app, us(app)
			  printf "  %-34s %12.1f  %8.3f µs/req\n", "  Go runtime, syscall wrappers (%)", rt, us(rt)
			  printf "  %-34s %12.1f  %8.3f µs/req\n", "  libc, liburing (%)", lib, us(lib) }'
	rm -f "$pr"
fi
rm -f "$lg" "$pf" "$srvlog"
