#!/usr/bin/env bash
# netface.sh compares net/http served over the reactor's net.Conn face
# (package netconn) with net/http over Go's own net package: HTTP/1.1 with
# wrk (64 keep-alive connections) and HTTP/2 over TLS with h2load (16
# connections, 10 streams each), with the server pinned to CPU 0 at
# GOMAXPROCS=1 and the load on CPU 1, and unpinned. The faces alternate
# round by round; it prints every round's requests/s, system calls per
# request (perf's raw_syscalls:sys_enter count of the server process over
# the run, divided by the requests done) and failures, then the median
# ratio netconn/net per case with its range.
#
#	bench/netface.sh [rounds] [seconds]    # default 5 rounds of 5 s
#
# Needs go, wrk, h2load (Debian: wrk, nghttp2-client), perf (linux-perf)
# and taskset.
set -euo pipefail
cd "$(dirname "$0")"
rounds=${1:-5}
secs=${2:-5}
for tool in go wrk h2load perf taskset; do
	command -v "$tool" >/dev/null || { echo "netface.sh: needs $tool" >&2; exit 1; }
done
bin=$(mktemp -d)/httpface
go build -o "$bin" ./cmd/httpface
out=$(mktemp)
trap 'rm -rf "$(dirname "$bin")" "$out"' EXIT

# run FACE PIN PROTO: one measurement, appended to $out as
# "PROTO PIN FACE reqs/s syscalls/req failed".
run() {
	local face=$1 pin=$2 proto=$3 srvpin="" clipin="" env=()
	if [ "$pin" = pinned ]; then
		srvpin="taskset -c 0" clipin="taskset -c 1" env=(GOMAXPROCS=1)
	fi
	local tlsflag=""
	[ "$proto" = h2 ] && tlsflag=-tls
	local fifo log
	log=$(mktemp)
	env "${env[@]}" $srvpin "$bin" -face "$face" $tlsflag >"$log" 2>&1 &
	local pid=$!
	for _ in $(seq 100); do grep -q listening "$log" && break; sleep 0.05; done
	local addr
	addr=$(sed -n 's/^listening on //p' "$log")
	local perfout
	perfout=$(mktemp)
	perf stat -x, -e raw_syscalls:sys_enter -p "$pid" -o "$perfout" &
	local perfpid=$!
	local reqs rps failed res
	if [ "$proto" = h1 ]; then
		res=$($clipin wrk -t1 -c64 -d"${secs}s" "http://$addr/")
		reqs=$(echo "$res" | awk '/requests in/ {print $1}')
		rps=$(echo "$res" | awk '/^Requests\/sec/ {print $2}')
		failed=$(echo "$res" | awk '/Non-2xx|Socket errors/ {n++} END {print n+0}')
	else
		res=$($clipin h2load -c16 -m10 -D "$secs" "https://$addr/" 2>&1)
		reqs=$(echo "$res" | awk '/^requests:/ {print $8}')
		rps=$(echo "$res" | awk '/^finished in/ {print $4}')
		failed=$(echo "$res" | awk '/^requests:/ {print $10 + $12}')
	fi
	kill -INT "$perfpid"; wait "$perfpid" 2>/dev/null || true
	kill "$pid"; wait "$pid" 2>/dev/null || true
	local sys
	sys=$(awk -F, '/raw_syscalls/ {print $1}' "$perfout")
	echo "$proto $pin $face $rps $(awk -v s="$sys" -v r="$reqs" 'BEGIN {printf "%.2f", s / r}') $failed" | tee -a "$out"
	rm -f "$log" "$perfout"
}

echo "proto pin face reqs/s syscalls/req failed"
for r in $(seq "$rounds"); do
	for proto in h1 h2; do
		for pin in pinned unpinned; do
			# Alternate which face goes first, round by round.
			if [ $((r % 2)) = 1 ]; then faces="netconn net"; else faces="net netconn"; fi
			for face in $faces; do run "$face" "$pin" "$proto"; done
		done
	done
done

# median prints the median of the numbers on standard input.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

echo
echo "netconn/net reqs/s: median ratio (range over rounds); syscalls/req: medians"
for proto in h1 h2; do
	for pin in pinned unpinned; do
		ratios=$(awk -v p="$proto" -v q="$pin" '$1 == p && $2 == q { if ($3 == "net") n[++i] = $4; else c[++j] = $4 }
			END { for (k = 1; k <= i && k <= j; k++) print c[k] / n[k] }' "$out")
		sc=$(awk -v p="$proto" -v q="$pin" '$1 == p && $2 == q && $3 == "netconn" { print $5 }' "$out" | median)
		sn=$(awk -v p="$proto" -v q="$pin" '$1 == p && $2 == q && $3 == "net" { print $5 }' "$out" | median)
		printf '%s %-8s %.3fx (%s-%s)  syscalls/req netconn %s net %s\n' "$proto" "$pin" \
			"$(echo "$ratios" | median)" "$(echo "$ratios" | sort -g | head -1)" "$(echo "$ratios" | sort -g | tail -1)" "$sc" "$sn"
	done
done
