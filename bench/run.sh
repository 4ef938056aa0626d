#!/bin/sh
# run.sh prints one table comparing the echo servers: the C epoll server,
# the reactor (epoll, one loop), gnet, evio, nbio (one event loop each) and
# Go's net package (goroutine per connection), at 1, 100 and 1000
# connections with 64- and 512-byte messages, each server pinned to CPU 0
# and the load generator to CPU 1, plus the server memory per idle
# connection with 5,000 idle connections. About 5 minutes as it is; flags
# given to it go to cmd/cpumsg after these and override them, e.g.
#
#	bench/run.sh -duration 10s -rounds 4
#
# Needs go, gcc, taskset and getconf; installs nothing but the bench
# module's Go modules (go run fetches them if they are missing).
set -eu
cd "$(dirname "$0")"
for tool in go gcc taskset getconf; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "run.sh: needs $tool (see README.md)" >&2
		exit 1
	fi
done
exec go run ./cmd/cpumsg -table \
	-servers c,reactor,gnet,evio,nbio,net \
	-cases 1x64,100x64,100x512,1000x64,1000x512 \
	-idle 5000 -duration 3s -warmup 1s -rounds 2 "$@"
