#!/usr/bin/env bash
# resp.sh times one Redis SET of a 1, 4, 16 and 64 MiB value sent in
# 64 KiB writes (cmd/bigset) against redis-server and against
# cmd/respserve, a RESP server on the reactor's protocol API, on every
# backend; each server pinned to CPU 0, the client to CPU 1, the servers'
# order rotated round by round. It prints every run's median time per
# size, then per server the median over rounds, its ratio to
# redis-server's, and 16 MiB's time over 4 MiB's.
#
#	bench/resp.sh [rounds] [runs-per-size]    # default 3 rounds of 9
#
# Needs go, taskset and redis-server (Debian: redis-server).
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-3}
runs=${2:-9}
for tool in go taskset redis-server; do
	command -v "$tool" >/dev/null || { echo "resp.sh: needs $tool" >&2; exit 1; }
done
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go build -o "$dir/respserve" ./cmd/respserve
go build -o "$dir/bigset" ./cmd/bigset
servers="redis reactor@epoll reactor@poll reactor@select reactor@uring"
out=$dir/out

# run SERVER ROUND: one server's runs, appended to $out as
# "round server MiB ms".
run() {
	local server=$1 round=$2 port=$((6400 + RANDOM % 1000)) pid
	if [ "$server" = redis ]; then
		taskset -c 0 redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
			--protected-mode no --loglevel warning >"$dir/log" 2>&1 &
	else
		GOMAXPROCS=1 taskset -c 0 "$dir/respserve" -addr "127.0.0.1:$port" -backend "${server#*@}" >"$dir/log" 2>&1 &
	fi
	pid=$!
	local up=""
	for _ in $(seq 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { up=1; break; }
		sleep 0.05
	done
	if [ -z "$up" ]; then
		echo "resp.sh: $server did not start:" >&2; cat "$dir/log" >&2
		kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
		return
	fi
	taskset -c 1 "$dir/bigset" -addr "127.0.0.1:$port" -n "$runs" |
		awk -v r="$round" -v s="$server" '{ printf "%s %-15s %3s %8.2f\n", r, s, $1, $3 }' | tee -a "$out"
	kill "$pid"; wait "$pid" 2>/dev/null || true
}

echo "machine: $(nproc) CPUs, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(redis-server --version | cut -d' ' -f1-3)"
echo "round server MiB ms(median of $runs)"
set -- $servers
n=$#
for r in $(seq "$rounds"); do
	for i in $(seq 0 $((n - 1))); do
		k=$(( (i + r - 1) % n + 1 ))
		run "${!k}" "$r"
	done
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
echo "medians over rounds, ms; xredis = the ratio to redis-server's median; 16/4 = 16 MiB's time over 4 MiB's"
for s in $servers; do
	line=$(printf '%-15s' "$s")
	for mib in 1 4 16 64; do
		m=$(awk -v s="$s" -v z="$mib" '$2 == s && $3 == z {print $4}' "$out" | median)
		red=$(awk -v z="$mib" '$2 == "redis" && $3 == z {print $4}' "$out" | median)
		line="$line $(printf '%4d MiB %7.2f (%.2fx)' "$mib" "$m" "$(awk -v a="$m" -v b="$red" 'BEGIN {print a / b}')")"
	done
	m4=$(awk -v s="$s" '$2 == s && $3 == 4 {print $4}' "$out" | median)
	m16=$(awk -v s="$s" '$2 == s && $3 == 16 {print $4}' "$out" | median)
	echo "$line  16/4 $(awk -v a="$m16" -v b="$m4" 'BEGIN {printf "%.2f", a / b}')"
done
