#!/bin/bash
# Counts a pinned echo server's system calls per echoed message: runs
# cmd/cpumsg for one server and one case (7 s after a 1 s warm-up) and
# counts the server process's system calls with perf stat over 3 s of it.
# Needs perf and permission to trace (root, or perf_event_paranoid <= 1).
#
#   cd bench && ./syscalls.sh reactor@REACTOR_BACKEND=uring 1000x64
set -euo pipefail
srv=${1:?usage: syscalls.sh SERVER CONNSxSIZE}
case=${2:?usage: syscalls.sh SERVER CONNSxSIZE}
cd "$(dirname "$0")"
out=$(mktemp) stat=$(mktemp)
trap 'rm -f "$out" "$stat"' EXIT
go run ./cmd/cpumsg -cases "$case" -duration 7s -warmup 1s -rounds 1 -servers "$srv" >"$out" 2>&1 &
gen=$!
pid=
for _ in $(seq 300); do
	pid=$(sed -n 's/.*: pid \([0-9]*\) on CPUs.*/\1/p' "$out" | head -1)
	[ -n "$pid" ] && break
	sleep 0.2
done
[ -n "$pid" ] || { cat "$out"; exit 1; }
sleep 3
perf stat -x, -e raw_syscalls:sys_enter,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_write,syscalls:sys_enter_epoll_pwait,syscalls:sys_enter_epoll_wait \
	-p "$pid" -o "$stat" -- sleep 3
wait "$gen"
rate=$(sed -n 's/.*round 1: \([0-9]*\) msgs\/s.*/\1/p' "$out")
awk -F, -v r="$rate" -v s="$srv" -v c="$case" '
	$1 ~ /^[0-9]+$/ { split($3, a, ":"); n[a[2]] = $1 }
	END {
		m = r * 3
		printf "%-32s %-8s %6.0f msgs/s  all %.2f/msg  io_uring_enter %.2f  write %.2f  epoll_wait %.2f\n", s, c, r,
			n["sys_enter"] / m, n["sys_enter_io_uring_enter"] / m, n["sys_enter_write"] / m,
			(n["sys_enter_epoll_pwait"] + n["sys_enter_epoll_wait"]) / m
	}' "$stat"
