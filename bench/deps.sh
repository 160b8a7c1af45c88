#!/usr/bin/env bash
# Installs, when missing, the load tools and peer servers `make bench` drives:
# wrk, redis-benchmark (redis-tools), redis-server, Ruby EventMachine, and a C
# compiler with liburing for a C echo server given to bench/run -c-echo.
# Debian/Ubuntu only, best effort: bench/run skips a peer that is still
# missing and notes it under the tables.
set -u
pkgs=()
command -v wrk >/dev/null || pkgs+=(wrk)
command -v redis-benchmark >/dev/null || pkgs+=(redis-tools)
command -v redis-server >/dev/null || pkgs+=(redis-server)
ruby -reventmachine -e 1 >/dev/null 2>&1 || pkgs+=(ruby ruby-eventmachine)
command -v taskset >/dev/null || pkgs+=(util-linux)
# For the C liburing echo server peer (bench/run -c-echo FILE.c).
command -v cc >/dev/null || pkgs+=(gcc)
[ -e /usr/include/liburing.h ] || pkgs+=(liburing-dev)
if [ ${#pkgs[@]} -eq 0 ]; then
	exit 0
fi
if ! command -v apt-get >/dev/null; then
	echo "bench/deps.sh: please install: ${pkgs[*]}" >&2
	exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
{ $SUDO apt-get update -qq && $SUDO apt-get install -y -qq "${pkgs[@]}"; } ||
	echo "bench/deps.sh: could not install ${pkgs[*]}; those peers will be skipped" >&2
# The packaged redis-server starts a system instance on port 6379; bench/run
# starts its own on a free port, so the system one is not needed.
exit 0
