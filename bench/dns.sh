#!/usr/bin/env bash
# dns.sh measures a real client, dnsperf, against the same DNS server
# three ways (cmd/dnsserve): github.com/miekg/dns over Go's
# net.ListenPacket, the same server over the reactor's face
# (netconn.ListenPacket, on epoll and on the io_uring engine), and a
# responder on the reactor's packet handler. Each server is pinned to
# CPU 0 at GOMAXPROCS=1, dnsperf to CPU 1 (one thread, 10 sockets, 100
# queries in flight); the servers alternate round by round. It prints
# every run's queries/s, the server's CPU seconds (utime+stime from
# /proc), queries per CPU-second and system calls per query (perf's
# raw_syscalls:sys_enter count of the server), then medians and each
# server's ratio to miekg-net per round (median and range).
#
#	bench/dns.sh [rounds] [seconds]    # default 3 rounds of 10 s
#
# Needs go, dnsperf (Debian: dnsperf), perf (linux-perf) and taskset.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-3}
secs=${2:-10}
for tool in go dnsperf perf taskset gcc; do
	command -v "$tool" >/dev/null || { echo "dns.sh: needs $tool" >&2; exit 1; }
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/dnsserve" ./cmd/dnsserve
gcc -O2 -pthread -o "$dir/wake" cwake/wake.c
for i in $(seq 100); do echo "host$i.example.com A"; done >"$dir/queries"
servers="miekg-net miekg-face@epoll miekg-face@uring packet@epoll packet@uring"
tick=$(getconf CLK_TCK)
out=$dir/out

# run IMPL[@BACKEND] ROUND: one measurement, appended to $out as
# "round server qps cpu_s queries/cpu_s syscalls/query lost".
run() {
	local server=$1 round=$2 impl=${1%@*} be=""
	[ "$server" != "$impl" ] && be=${1#*@}
	local log=$dir/log
	GOMAXPROCS=1 taskset -c 0 "$dir/dnsserve" -impl "$impl" ${be:+-backend "$be"} -addr 127.0.0.1:0 >"$log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.05; done
	local addr port
	addr=$(sed -n 's/^listening on //p' "$log")
	[ -n "$addr" ] || { echo "dns.sh: $server did not start:"; cat "$log"; kill "$pid"; exit 1; } >&2
	port=${addr##*:}
	local t0
	t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$dir/perf" &
	local perfpid=$!
	local res
	res=$(taskset -c 1 dnsperf -s 127.0.0.1 -p "$port" -d "$dir/queries" -l "$secs" -T 1 -c 10 -q 100 2>&1)
	kill -INT "$perfpid"; wait "$perfpid" 2>/dev/null || true
	local t1
	t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
	kill "$pid"; wait "$pid" 2>/dev/null || true
	local done qps lost sys
	done=$(echo "$res" | awk '/Queries completed:/ {print $3}')
	lost=$(echo "$res" | awk '/Queries lost:/ {print $3}')
	qps=$(echo "$res" | awk '/Queries per second:/ {print $4}')
	sys=$(awk -F, '/raw_syscalls/ {print $1}' "$dir/perf")
	awk -v r="$round" -v s="$server" -v q="$qps" -v d="$done" -v c=$((t1 - t0)) -v t="$tick" -v y="$sys" -v l="$lost" \
		'BEGIN { cpu = c / t; printf "%s %-16s %8.0f %6.2f %8.0f %6.2f %s\n", r, s, q, cpu, d / cpu, y / d, l }' | tee -a "$out"
}

echo "machine: $(nproc) CPUs, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "one sleep and wake here: $("$dir/wake" 0 1 20000)"
echo "round server qps cpu_s queries/cpu_s syscalls/query lost"
set -- $servers
n=$#
for r in $(seq "$rounds"); do
	# Rotate the order round by round so no server always goes first.
	for i in $(seq 0 $((n - 1))); do
		k=$(( (i + r - 1) % n + 1 ))
		run "${!k}" "$r"
	done
done

# median prints the median of the numbers on standard input.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
echo "medians; ratio = queries per CPU-second / miekg-net's in the same round: median (range)"
for s in $servers; do
	q=$(awk -v s="$s" '$2 == s {print $5}' "$out" | median)
	y=$(awk -v s="$s" '$2 == s {print $6}' "$out" | median)
	ratios=$(awk -v s="$s" '$2 == "miekg-net" {b[$1] = $5} $2 == s {v[$1] = $5} END {for (r in v) print v[r] / b[r]}' "$out")
	printf '%-16s queries/cpu_s %8.0f  syscalls/query %5.2f  ratio %.2fx (%.2f-%.2f)\n' "$s" "$q" "$y" \
		"$(echo "$ratios" | median)" "$(echo "$ratios" | sort -g | head -1)" "$(echo "$ratios" | sort -g | tail -1)"
done
