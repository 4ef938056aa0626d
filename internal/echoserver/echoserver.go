// Package echoserver is cmd/echoserver's implementation, shared with
// cmd/compare, which starts the models by re-executing itself as an echo
// server. The command-line contract is in cmd/echoserver's doc and
// DESIGN.md.
package echoserver

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/iterative"
	"github.com/muxkit/reactor/servers/multiplex"
	"github.com/muxkit/reactor/servers/multiprocess"
	"github.com/muxkit/reactor/servers/threadpool"
)

// shutdownGrace bounds how long closing the clients may take on a signal.
const shutdownGrace = 5 * time.Second

// usageError is a bad flag value: exit status 2.
type usageError struct{ error }

// config is the parsed command line.
type config struct {
	model   string
	backend poller.Backend
	addr    string
	network string
	workers int
	loops   int
}

func parse(args []string) (config, error) {
	fs := flag.NewFlagSet("echoserver", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	model := fs.String("model", "", "iterative, multiprocess, threadpool or multiplex (required)")
	backend := fs.String("backend", "", "multiplex only: epoll, kqueue, poll, select or uring (default: the build's default)")
	addr := fs.String("addr", "127.0.0.1:0", "address to listen on; port 0 picks a free port")
	workers := fs.Int("workers", -1, "threadpool: pool size, 0 = a thread per client (default 128); multiprocess: pre-forked workers, 0 = a process per client (default 0)")
	loops := fs.Int("loops", 0, "multiplex: event loops (default GOMAXPROCS)")
	network := fs.String("network", "tcp", "tcp or unix (every model); udp or unixgram (multiplex: every datagram is echoed to its sender)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		return config{}, usageError{err}
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	c := config{model: *model, addr: *addr, network: *network, workers: *workers, loops: *loops}
	datagram := c.network == "udp" || c.network == "unixgram"
	switch {
	case fs.NArg() > 0:
		return c, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	case c.model == "":
		return c, usageError{errors.New("-model is required: iterative, multiprocess, threadpool or multiplex")}
	case !slices.Contains([]string{"iterative", "multiprocess", "threadpool", "multiplex"}, c.model):
		return c, usageError{fmt.Errorf("-model %q: want iterative, multiprocess, threadpool or multiplex", c.model)}
	case set["backend"] && c.model != "multiplex":
		return c, usageError{fmt.Errorf("-backend applies to -model multiplex only, not %s", c.model)}
	case set["workers"] && c.model != "threadpool" && c.model != "multiprocess":
		return c, usageError{fmt.Errorf("-workers applies to -model threadpool or multiprocess only, not %s", c.model)}
	case set["workers"] && c.workers < 0:
		return c, usageError{fmt.Errorf("-workers %d: want 0 or more", c.workers)}
	case set["loops"] && c.model != "multiplex":
		return c, usageError{fmt.Errorf("-loops applies to -model multiplex only, not %s", c.model)}
	case c.loops < 0:
		return c, usageError{fmt.Errorf("-loops %d: want 0 or more", c.loops)}
	case !slices.Contains([]string{"tcp", "unix", "udp", "unixgram"}, c.network):
		return c, usageError{fmt.Errorf("-network %q: want tcp, unix, udp or unixgram", c.network)}
	case datagram && c.model != "multiplex":
		return c, usageError{fmt.Errorf("-network %s applies to -model multiplex only, not %s", c.network, c.model)}
	}
	if *backend != "" {
		b, err := poller.ParseBackend(*backend)
		if err != nil {
			return c, usageError{fmt.Errorf("-backend %q: want epoll, kqueue, poll, select or uring", *backend)}
		}
		c.backend = b
	}
	if c.model == "multiplex" {
		b, err := reactor.ResolveBackend(c.backend) // $REACTOR_BACKEND
		if err != nil {
			return c, usageError{err}
		}
		if !slices.Contains(reactor.Backends(), b) {
			why := "on this OS"
			if b == reactor.Uring {
				why = fmt.Sprint("here: ", reactor.UringSupport())
			}
			return c, usageError{fmt.Errorf("backend %s is not available %s (have %v)", b, why, reactor.Backends())}
		}
		c.backend = b
	}
	switch c.network {
	case "tcp", "udp":
		if _, err := net.ResolveTCPAddr("tcp", c.addr); err != nil {
			return c, usageError{fmt.Errorf("-addr %q: %v", c.addr, err)}
		}
	default:
		if !set["addr"] {
			return c, usageError{fmt.Errorf("-network %s needs -addr PATH", c.network)}
		}
	}
	if !set["workers"] {
		// threadpool: a pool; multiprocess: a process per client.
		c.workers = 0
		if c.model == "threadpool" {
			c.workers = threadpool.DefaultWorkers
		}
	}
	return c, nil
}

func newServer(c config) servers.Server {
	switch c.model {
	case "iterative":
		return &iterative.Server{Handler: servers.Echo}
	case "multiprocess":
		return &multiprocess.Server{Prefork: c.workers}
	case "threadpool":
		return &threadpool.Server{Handler: servers.Echo, Workers: c.workers, PerClient: c.workers == 0}
	default:
		return &multiplex.Server{Backend: c.backend, Loops: c.loops}
	}
}

// Run is the whole command, given its arguments (without the program
// name), where to print and the signals that stop it; it returns the exit
// status. The binary must have called multiprocess.ServeChild first.
func Run(args []string, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	c, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "usage: echoserver -model iterative|multiprocess|threadpool|multiplex [-backend epoll|kqueue|poll|select|uring] [-addr HOST:PORT] [-workers N] [-loops N] [-network tcp|unix|udp|unixgram]")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 2
	}
	if c.network == "udp" || c.network == "unixgram" {
		return runDatagrams(c, stdout, stderr, sigs)
	}
	ln, err := servers.Listen(c.network, c.addr)
	if err != nil {
		fmt.Fprintf(stderr, "echoserver: listen: %v\n", err)
		return 1
	}
	srv := newServer(c)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())

	select {
	case err = <-served: // failed to start, or failed while serving
		ln.Close()
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 1
	case <-sigs:
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	serr := srv.Shutdown(ctx)
	err = <-served
	ln.Close()
	if !errors.Is(err, servers.ErrServerClosed) {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 1
	}
	if serr != nil {
		fmt.Fprintf(stderr, "echoserver: shutdown: %v (clients were cut off)\n", serr)
	}
	return 0
}

// runDatagrams is Run for -network udp or unixgram: the multiplex model's
// reactor Server echoes every datagram to its sender.
func runDatagrams(c config, stdout, stderr io.Writer, sigs <-chan os.Signal) int {
	s := &reactor.Server{Backend: c.backend, Loops: c.loops}
	addr, err := s.ListenPacket(c.network, c.addr, reactor.PacketEcho, nil)
	if err != nil {
		fmt.Fprintf(stderr, "echoserver: listen: %v\n", err)
		return 1
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	fmt.Fprintf(stdout, "listening on %s\n", addr)
	select {
	case err = <-served:
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 1
	case <-sigs:
	}
	ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	serr := s.Shutdown(ctx)
	if err = <-served; !errors.Is(err, reactor.ErrServerClosed) {
		fmt.Fprintf(stderr, "echoserver: %v\n", err)
		return 1
	}
	if serr != nil {
		fmt.Fprintf(stderr, "echoserver: shutdown: %v\n", serr)
	}
	return 0
}
