// Command reactorecho is the echo server bench/cmd/cpumsg measures: the
// reactor's multiplexing Server with the Echo handler, in a process of its
// own so that its CPU time can be read from /proc/PID/stat exactly as the C
// server's is.
//
//	reactorecho [-addr 127.0.0.1:0] [-loops 1] [-backend epoll] [-model reactor|net|raw|rawpark|uring|gnet|evio|nbio] [-network tcp|udp] [-cpuprofile FILE]
//
// With -network udp it echoes datagrams instead: the reactor's
// PacketEcho (model reactor) or a goroutine reading and writing a
// *net.UDPConn (model net), each socket with 4 MiB buffers.
//
// It prints "listening on HOST:PORT", then "pid PID", and exits 0 on SIGINT
// or SIGTERM after closing its clients (and writing the CPU profile).
// With REACTORECHO_NEIGHBORS=1 the process also runs the rest of a
// program beside the server (bench/internal/neighbors: a 1 ms sleeper, an
// allocator, a ping-pong pair, and with REACTORECHO_SPIN=1 a goroutine
// computing half the time): SIGUSR1 starts a window, SIGUSR2 prints
// "neighbors JSON" with what they saw in it. With REACTORECHO_TRACE=FILE
// it writes an execution trace of a window of the run to FILE,
// REACTORECHO_TRACE_AT after the start (DELAY+LENGTH, default 3s+3s).
//
// Other models, as points of reference:
//
//   - net: goroutine-per-connection on Go's net package.
//   - raw (linux): the C server (bench/cepoll/echo.c) transcribed to Go with
//     package syscall, no reactor: what Go itself costs next to C.
//   - rawpark (linux): raw, but when nothing is ready it parks the goroutine
//     on the epoll fd through Go's netpoller instead of blocking in
//     epoll_wait, so no thread sits in a blocking system call.
//   - uring (linux): bench/curing/echo.c in Go over the main module's
//     internal/uring, no reactor: the completion model's Go reference.
//     REACTORECHO_URING_BATCH=1 batches wake-ups; REACTORECHO_URING_PARK=1
//     parks in Go's netpoller on the ring's fd instead of blocking a
//     locked thread in io_uring_enter.
//   - gnet, evio, nbio: github.com/panjf2000/gnet/v2, github.com/tidwall/evio
//     and github.com/lesismal/nbio, each in one event loop with its own
//     idiomatic echo (peers.go says how each is configured).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/bench/internal/neighbors"
	"github.com/muxkit/reactor/poller"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	loops := flag.Int("loops", 1, "event loops (reactor model); 0: the Server's default, GOMAXPROCS")
	backend := flag.String("backend", "", "backend of the reactor model: epoll, poll, select, kqueue or uring (default: $REACTOR_BACKEND, else the OS's default)")
	model := flag.String("model", "reactor", "reactor; net (goroutine per connection on Go's net package); raw or rawpark (a bare Go epoll loop, linux); uring (a bare Go io_uring loop, linux); gnet, evio or nbio (those libraries, one event loop)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	network := flag.String("network", "tcp", "tcp, or udp: echo datagrams (models reactor and net)")
	flag.Parse()

	var be poller.Backend // zero: the Server resolves $REACTOR_BACKEND
	var err error
	if *backend != "" {
		if be, err = poller.ParseBackend(*backend); err != nil {
			usage(err)
		}
	}
	if *loops < 0 {
		usage(fmt.Errorf("-loops %d: want 0 (the default) or more", *loops))
	}
	switch *model {
	case "reactor", "net", "raw", "rawpark", "uring", "gnet", "evio", "nbio":
	default:
		usage(fmt.Errorf("-model %q: want reactor, net, raw, rawpark, uring, gnet, evio or nbio", *model))
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fail(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fail(err)
		}
		finish = func() {
			pprof.StopCPUProfile()
			if err := f.Close(); err != nil {
				fail(err)
			}
		}
	}

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	if os.Getenv("REACTORECHO_NEIGHBORS") == "1" {
		startNeighbors()
	}
	if f := os.Getenv("REACTORECHO_TRACE"); f != "" {
		startTrace(f, os.Getenv("REACTORECHO_TRACE_AT"))
	}
	if *network == "udp" {
		switch *model {
		case "reactor":
			err = serveReactorUDP(*addr, be, *loops, sig)
		case "net":
			err = serveNetUDP(*addr, sig)
		default:
			usage(fmt.Errorf("-network udp: model reactor or net, not %s", *model))
		}
		if err != nil {
			fail(err)
		}
		finish()
		return
	}
	if *network != "tcp" {
		usage(fmt.Errorf("-network %q: want tcp or udp", *network))
	}
	switch *model {
	case "net":
		err = serveNet(*addr, sig)
	case "raw", "rawpark":
		err = serveRaw(*addr, *model == "rawpark", sig)
	case "uring":
		err = serveUring(*addr, sig)
	case "gnet":
		err = serveGnet(*addr, sig)
	case "evio":
		err = serveEvio(*addr, sig)
	case "nbio":
		err = serveNbio(*addr, sig)
	default:
		err = serveReactor(*addr, be, *loops, sig)
	}
	if err != nil {
		fail(err)
	}
	finish()
}

// finish writes the CPU profile, if one is being taken.
var finish = func() {}

// startNeighbors runs the rest of a program beside the server
// (bench/internal/neighbors): SIGUSR1 starts a window, SIGUSR2 ends it
// and prints "neighbors JSON" on stdout.
func startNeighbors() {
	n := neighbors.Start(os.Getenv("REACTORECHO_SPIN") == "1")
	usr := make(chan os.Signal, 1)
	signal.Notify(usr, syscall.SIGUSR1, syscall.SIGUSR2)
	go func() {
		for s := range usr {
			if s == syscall.SIGUSR1 {
				n.Reset()
				continue
			}
			fmt.Printf("neighbors %s\n", n.Report().JSON())
		}
	}()
}

func serveReactor(addr string, be poller.Backend, loops int, sig <-chan os.Signal) error {
	be, err := reactor.ResolveBackend(be)
	if err != nil {
		return err
	}
	s := &reactor.Server{Handler: reactor.Echo, Loops: loops, Backend: be, Uring: uringConfig()}
	if err := s.Listen("tcp", addr); err != nil {
		return err
	}
	return serveUntil(s, s.Addr(), be, sig)
}

// serveUntil serves s, whose listener or datagram socket is at addr, until
// a signal, then shuts it down.
func serveUntil(s *reactor.Server, addr net.Addr, be poller.Backend, sig <-chan os.Signal) error {
	fmt.Printf("backend %v\n", be) // before ready's line, which cpumsg reads up to
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	ready(addr)
	select {
	case err := <-served:
		return err
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		return err
	}
	if err := <-served; !errors.Is(err, reactor.ErrServerClosed) {
		return err
	}
	return nil
}

// uringConfig reads the engine's knobs from the environment, for
// cmd/cpumsg's NAME@VAR=VALUE servers: REACTOR_URING_BATCH, a duration
// (UringConfig.BatchWait), REACTOR_URING_BUFFERS, a count
// (UringConfig.Buffers), and REACTOR_URING_DEDICATED=1
// (UringConfig.Dedicated). The library itself reads neither.
func uringConfig() reactor.UringConfig {
	var c reactor.UringConfig
	if s, ok := os.LookupEnv("REACTOR_URING_BATCH"); ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			usage(fmt.Errorf("REACTOR_URING_BATCH: %v", err))
		}
		c.BatchWait = d
	}
	c.Dedicated = os.Getenv("REACTOR_URING_DEDICATED") == "1"
	if s, ok := os.LookupEnv("REACTOR_URING_BUFFERS"); ok {
		n, err := strconv.Atoi(s)
		if err != nil {
			usage(fmt.Errorf("REACTOR_URING_BUFFERS: %v", err))
		}
		c.Buffers = n
	}
	return c
}

// serveNet echoes on Go's net package, one goroutine per connection.
func serveNet(addr string, sig <-chan os.Signal) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	go func() {
		<-sig
		ln.Close()
	}()
	ready(ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go func() {
			defer c.Close()
			buf := make([]byte, 4<<10)
			for {
				n, err := c.Read(buf)
				if n > 0 {
					if _, err := c.Write(buf[:n]); err != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func ready(addr net.Addr) {
	fmt.Printf("listening on %v\npid %d\n", addr, os.Getpid())
}

func usage(err error) {
	fmt.Fprintf(os.Stderr, "reactorecho: %v\n", err)
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "reactorecho: %v\n", err)
	os.Exit(1)
}

// startTrace writes an execution trace to file for a window of the run,
// at "DELAY+LENGTH" after the start (default 3s+3s): $REACTORECHO_TRACE
// and $REACTORECHO_TRACE_AT, for lining the runtime's events (a GC's
// stop-the-world, by nanotime) up with a kernel trace taken with perf
// record -k CLOCK_MONOTONIC.
func startTrace(file, at string) {
	delay, length := 3*time.Second, 3*time.Second
	if at != "" {
		d, l, ok := strings.Cut(at, "+")
		var err1, err2 error
		delay, err1 = time.ParseDuration(d)
		length, err2 = time.ParseDuration(l)
		if !ok || err1 != nil || err2 != nil {
			usage(fmt.Errorf("$REACTORECHO_TRACE_AT %q: want DELAY+LENGTH, e.g. 3s+3s", at))
		}
	}
	f, err := os.Create(file)
	if err != nil {
		fail(err)
	}
	time.AfterFunc(delay, func() {
		if err := trace.Start(f); err != nil {
			fail(err)
		}
		time.AfterFunc(length, func() {
			trace.Stop()
			if err := f.Close(); err != nil {
				fail(err)
			}
		})
	})
}
