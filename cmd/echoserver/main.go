// Command echoserver runs one of the four reference server models as an
// echo server on loopback or any address:
//
//	go run ./cmd/echoserver -model M [-backend B] [-addr HOST:PORT] [-workers N] [-loops N] [-network tcp|unix|udp|unixgram]
//
// M is iterative, multiprocess, threadpool or multiplex. B is epoll,
// kqueue, poll, select or uring (the io_uring completion engine, linux),
// for multiplex only (default: the build's
// default, or $REACTOR_BACKEND). -workers is the thread pool's size
// (default 128; 0 starts a thread per client) or, for multiprocess, the
// number of pre-forked worker processes (default 0: a process per client).
// -loops is multiplex's number of event loops (default GOMAXPROCS).
// -network is tcp (the default) or unix for every model, and udp or
// unixgram for multiplex, which then echoes every datagram to its sender;
// unix and unixgram take a path as -addr.
//
// When it is ready it prints exactly one line, "listening on HOST:PORT",
// to stdout (port 0, the default, picks a free port). It echoes every byte
// it reads. On SIGINT or SIGTERM it stops accepting, closes its clients
// (and, for multiprocess, ends and reaps its children) and exits 0. A bad
// flag value exits 2 with a one-line reason on stderr; a failure to listen
// or serve exits 1.
package main

import (
	"io"
	"os"
	"os/signal"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/echoserver"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/multiprocess"
)

func main() {
	multiprocess.ServeChild(servers.Echo)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr, sigs))
}

// run is the whole command: it returns the exit status.
func run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	return echoserver.Run(args, stdout, stderr, sigs)
}
