#!/bin/sh
# run.sh prints one table comparing the echo servers: the C epoll server,
# the C io_uring server (liburing; with and without wake batching), the
# reactor (epoll, one loop), the reactor's io_uring engine
# (REACTOR_BACKEND=uring), gnet, evio, nbio (one event loop each) and
# Go's net package (goroutine per connection), at 1, 100 and 1000
# connections with 64- and 512-byte messages, each server pinned to CPU 0
# and the load generator to CPU 1, plus the server memory per idle
# connection with 5,000 idle connections. About 5 minutes as it is; flags
# given to it go to cmd/cpumsg after these and override them, e.g.
#
#	bench/run.sh -duration 10s -rounds 4
#
# Needs go, gcc, taskset and getconf, and liburing's headers for the C
# io_uring server (Debian: liburing-dev; run as root it installs them with
# apt-get; without them the io_uring servers are left out, saying so).
set -eu
cd "$(dirname "$0")"
for tool in go gcc taskset getconf; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "run.sh: needs $tool (see README.md)" >&2
		exit 1
	fi
done
servers=c,c-uring,c-uring@URING_BATCH=1,reactor,reactor@REACTOR_BACKEND=uring,gnet,evio,nbio,net
if ! printf '#include <liburing.h>\n' | gcc -E - >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		apt-get install -y liburing-dev >/dev/null || true
	fi
fi
if ! printf '#include <liburing.h>\n' | gcc -E - >/dev/null 2>&1; then
	echo "run.sh: no liburing headers (liburing-dev): the C io_uring server is left out" >&2
	servers=c,reactor,reactor@REACTOR_BACKEND=uring,gnet,evio,nbio,net
fi
exec go run ./cmd/cpumsg -table \
	-servers "$servers" \
	-cases 1x64,100x64,100x512,1000x64,1000x512 \
	-idle 5000 -duration 3s -warmup 1s -rounds 2 "$@"
