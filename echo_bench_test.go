package reactor

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// The echo benchmarks. Run them with
//
//	go test -run '^$' -bench Echo -benchmem .
//
// BenchmarkEcho is the round trip over loopback TCP, BenchmarkEchoDispatch
// the loop alone without a network, BenchmarkEchoIdleRSS the memory an idle
// connection costs. The server's CPU time per message next to a C epoll
// server is measured outside this module, by bench/cmd/cpumsg.

// echoMsgSize is the message of BenchmarkEcho and BenchmarkEchoDispatch.
const echoMsgSize = 64

// echoClientWorkers caps the client goroutines of BenchmarkEcho: enough to
// keep a one-loop server busy, few enough that the client is cheap.
const echoClientWorkers = 4

// BenchmarkEcho measures one 64-byte echo round trip over loopback TCP to a
// one-loop Server, per backend, at 1, 100 and 1000 connections; each op is
// one message on one connection, the ops spread evenly over them.
//
// The client is allocation-free, so allocs/op is the server's: raw blocking
// sockets driven by up to echoClientWorkers goroutines with plain read and
// write system calls, each goroutine owning a share of the connections and
// working in waves (send one message on each of its connections, then read
// each echo back), so every connection has at most one message in flight and
// the server sees up to conns ready sockets per wake-up. msgs/s is ops per
// second of the timed loop.
//
// The client sockets are moved to fds at or above 1024 (when RLIMIT_NOFILE
// allows), so the server's accepted fds stay below FD_SETSIZE and select
// runs at 1000 connections too.
func BenchmarkEcho(b *testing.B) {
	for _, be := range testBackends(b) {
		for _, n := range []int{1, 100, 1000} {
			b.Run(fmt.Sprintf("backend=%v/conns=%d", be, n), func(b *testing.B) {
				benchEcho(b, be, n)
			})
		}
	}
}

func benchEcho(b *testing.B, be poller.Backend, n int) {
	benchEchoServer(b, &Server{Handler: Echo, Loops: 1, Backend: be}, n)
}

// benchEchoServer is BenchmarkEcho's measurement against s, which it starts
// (s.Handler must echo).
func benchEchoServer(b *testing.B, s *Server, n int) {
	base := clientFDBase(b, s.Backend, n)
	startServer(b, s)
	addr := s.Addr().(*net.TCPAddr)
	fds := make([]int, n)
	for i := range fds {
		fd, err := dialRaw(addr, base)
		if err != nil {
			b.Fatalf("dial %d of %d: %v", i+1, n, err)
		}
		fds[i] = fd
	}
	b.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
	waitConns(b, s, n)

	workers := min(n, echoClientWorkers)
	// Contiguous shares, not fd i to worker i%workers: the acceptor deals
	// connection i to loop i%Loops, and a worker must not end up talking
	// to one loop only because of that.
	shares := make([][]int, workers)
	for i, fd := range fds {
		w := i * workers / n
		shares[w] = append(shares[w], fd)
	}
	// The workers start before the timer, so their goroutines and closures
	// are not counted: the timed loop allocates nothing on the client side.
	var wg sync.WaitGroup
	start := make(chan struct{})
	for w, share := range shares {
		ops := b.N / workers
		if w < b.N%workers {
			ops++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := echoWaves(share, ops); err != nil {
				b.Error(err)
			}
		}()
	}
	// The whole process's: the client's write and read, two per
	// message, included.
	report := countSyscalls(b, "syscalls/msg")
	b.ReportAllocs()
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	report()
}

// echoWaves sends ops messages over fds, one in flight per fd: a wave sends
// one message on each fd, then reads every echo back. It does not allocate.
func echoWaves(fds []int, ops int) error {
	var msg, buf [echoMsgSize]byte
	for i := range msg {
		msg[i] = byte('a' + i%26)
	}
	for done := 0; done < ops; {
		wave := fds[:min(len(fds), ops-done)]
		for _, fd := range wave {
			if err := writeFull(fd, msg[:]); err != nil {
				return err
			}
		}
		for _, fd := range wave {
			if err := readFull(fd, buf[:]); err != nil {
				return err
			}
			if buf != msg {
				return fmt.Errorf("fd %d: echo differs from the message", fd)
			}
		}
		done += len(wave)
	}
	return nil
}

// BenchmarkEchoDispatch measures the loop's per-event cost with no network:
// each op is one event served by one turn of the loop (Wait, the fd table
// lookup, the target's onEvent), with ready fds ready at every Wait and the
// Wait's cost shared among them. It drives an unstarted Loop's serveOnce
// from the benchmark goroutine, so no goroutine hand-off is measured.
//
//   - path=dispatch: always-readable socketpair ends (a byte nobody reads)
//     registered with a target whose onEvent does nothing: the loop's own
//     overhead per event.
//   - path=echo: both ends of ready socketpairs registered as Conns with an
//     echoing handler and one 64-byte message put in each pair, so the
//     message bounces between the two ends inside the loop: the whole
//     server path per event (read, OnData, Write, interest update) without
//     TCP.
func BenchmarkEchoDispatch(b *testing.B) {
	for _, be := range poller.Available() {
		for _, path := range []string{"dispatch", "echo"} {
			for _, ready := range []int{1, eventBatch} {
				b.Run(fmt.Sprintf("backend=%v/path=%s/ready=%d", be, path, ready), func(b *testing.B) {
					benchDispatch(b, be, path, ready)
				})
			}
		}
	}
}

// countTarget is a loop target that only counts its events.
type countTarget struct{ n *int }

func (t countTarget) onEvent(poller.Events) { *t.n++ }
func (t countTarget) onStop(error)          {}

func benchDispatch(b *testing.B, be poller.Backend, path string, ready int) {
	var events int
	s := &Server{Handler: HandlerFuncs{Data: func(c *Conn, data []byte) {
		events++
		c.Write(data)
	}}}
	s.svc = newService(s.Handler, Limits{}, 0, 0, 0)
	s.svc.srv = s
	l, err := newTestLoop(be)
	if err != nil {
		b.Fatal(err)
	}
	var fds []int
	defer func() {
		l.events = l.events[:cap(l.events)]
		l.exit() // shuts the Conns and closes the poller
		if path == "dispatch" {
			for _, fd := range fds {
				unix.Close(fd)
			}
		}
	}()
	msg := make([]byte, echoMsgSize)
	for range ready {
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			b.Fatal(err)
		}
		switch path {
		case "dispatch":
			// pair[0] stays readable: the byte written on pair[1] is never read.
			fds = append(fds, pair[0], pair[1])
			if _, err := unix.Write(pair[1], msg[:1]); err != nil {
				b.Fatal(err)
			}
			h, err := l.tab.Put(pair[0], countTarget{&events})
			if err != nil {
				b.Fatal(err)
			}
			if err := l.p.Add(pair[0], uint64(h), poller.Readable); err != nil {
				b.Fatal(err)
			}
		case "echo":
			s.register(l, pair[0])
			s.register(l, pair[1])
			if l.Stats().Open != int64(2*(len(fds)/2+1)) {
				b.Fatalf("register of socketpair %v failed", pair)
			}
			fds = append(fds, pair[0], pair[1])
			if _, err := unix.Write(pair[1], msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	l.events = l.events[:ready]
	// One turn first, so the poller's buffer has grown to the batch size.
	if err := l.serveOnce(0); err != nil {
		b.Fatal(err)
	}
	if events != ready {
		b.Fatalf("first turn served %d events, want %d", events, ready)
	}
	events = 0
	b.ReportAllocs()
	b.ResetTimer()
	for idle := 0; events < b.N; {
		if left := b.N - events; left < len(l.events) {
			l.events = l.events[:left]
		}
		before := events
		if err := l.serveOnce(0); err != nil {
			b.Fatal(err)
		}
		if events != before {
			idle = 0
		} else if idle++; idle > 1000 {
			b.Fatalf("no event in 1000 loop turns after %d of %d", events, b.N)
		}
	}
	b.StopTimer()
	if events != b.N {
		b.Fatalf("served %d events, want %d", events, b.N)
	}
}

// idleRSSConns is how many idle connections BenchmarkEchoIdleRSS opens.
const idleRSSConns = 10000

// idleClientEnv tells a re-executed test binary to act as the client of
// BenchmarkEchoIdleRSS (see TestEchoIdleRSSClient); its value is
// "HOST:PORT COUNT".
const idleClientEnv = "REACTOR_ECHO_IDLE_CLIENT"

// BenchmarkEchoIdleRSS measures the server memory one idle connection costs:
// the growth of the process's resident set (VmRSS) while 10,000 idle TCP
// connections are open, divided by 10,000, reported as rss-bytes/conn
// (heap-bytes/conn is the same for the Go heap alone). Both readings come
// after runtime.GC and debug.FreeOSMemory. The clients run in a child
// process (this test binary, re-executed) so that neither their Go objects
// nor their 10,000 fds count against this process: in-process they would
// need 20,000 fds here, and the RLIMIT_NOFILE this was written against is
// 20,000. Kernel socket memory is not in RSS on either side. select is
// skipped: it cannot watch fds past FD_SETSIZE (1024). The setup and
// measurement run once; ns/op means nothing here. Linux only (/proc).
func BenchmarkEchoIdleRSS(b *testing.B) {
	for _, be := range testBackends(b) {
		b.Run(fmt.Sprintf("backend=%v/conns=%d", be, idleRSSConns), func(b *testing.B) {
			benchIdleRSS(b, be, idleRSSConns)
		})
	}
}

func benchIdleRSS(b *testing.B, be poller.Backend, n int) {
	if runtime.GOOS != "linux" {
		b.Skip("reads VmRSS from /proc/self/status: linux only")
	}
	if be == poller.Select {
		b.Skipf("select cannot watch %d fds (FD_SETSIZE is 1024)", n)
	}
	if lim := nofile(); lim < int64(n)+64 {
		b.Skipf("RLIMIT_NOFILE is %d; %d idle connections need %d fds in this process", lim, n, n+64)
	}
	s := startEchoServer(b, be, Echo)

	cmd := exec.Command(os.Args[0], "-test.run=^TestEchoIdleRSSClient$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", idleClientEnv, s.Addr(), n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the child closes its connections and exits on EOF
		cmd.Wait()
	})
	lines := bufio.NewScanner(stdout)
	expect := func(want string) {
		b.Helper()
		if !lines.Scan() || lines.Text() != want {
			b.Fatalf("client child: got %q (%v), want %q", lines.Text(), lines.Err(), want)
		}
	}

	expect("ready")
	rss0, heap0 := memoryNow(b)
	if _, err := stdin.Write([]byte("go\n")); err != nil {
		b.Fatal(err)
	}
	expect("connected")
	waitConns(b, s, n)
	rss1, heap1 := memoryNow(b)
	for b.Loop() { // the first call resets the timer and the metrics
	}
	b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-bytes/conn")
	b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-bytes/conn")
}

// TestEchoIdleRSSClient is the client process of BenchmarkEchoIdleRSS, not
// a test: it does nothing unless idleClientEnv is set. It prints "ready",
// waits for a line on stdin, opens the connections, prints "connected" and
// holds them until stdin reaches end of file.
func TestEchoIdleRSSClient(t *testing.T) {
	spec, ok := os.LookupEnv(idleClientEnv)
	if !ok {
		return
	}
	hostport, count, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(count)
	if err != nil {
		t.Fatalf("%s=%q: %v", idleClientEnv, spec, err)
	}
	addr, err := net.ResolveTCPAddr("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	in := bufio.NewReader(os.Stdin)
	fmt.Println("ready")
	if _, err := in.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	fds := make([]int32, 0, n)
	for range n {
		fd, err := dialRaw(addr, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, int32(fd))
	}
	fmt.Println("connected")
	for {
		if _, err := in.ReadByte(); err != nil {
			break
		}
	}
	for _, fd := range fds {
		unix.Close(int(fd))
	}
}

// startEchoServer serves h on a loopback port with one loop of backend be
// until the benchmark ends.
func startEchoServer(b *testing.B, be poller.Backend, h Handler) *Server {
	b.Helper()
	return startServer(b, &Server{Handler: h, Loops: 1, Backend: be})
}

// startServer serves s on a loopback port until the benchmark ends.
func startServer(b *testing.B, s *Server) *Server {
	b.Helper()
	if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != ErrServerClosed {
			b.Errorf("Serve: %v", err)
		}
	})
	return s
}

// waitConns waits until s has n open connections, for up to 30 seconds.
func waitConns(b *testing.B, s *Server, n int) {
	b.Helper()
	for end := time.Now().Add(30 * time.Second); s.nconns.Load() != int64(n); {
		if time.Now().After(end) {
			b.Fatalf("server has %d connections after 30s, want %d", s.nconns.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// clientFDBase returns the lowest fd number the client sockets of n
// connections should be moved to, so the server's own fds stay below
// FD_SETSIZE, or 0 to leave them where socket(2) puts them. It skips b when
// there are not enough fds for both ends, or for select past FD_SETSIZE.
func clientFDBase(b *testing.B, be poller.Backend, n int) int {
	const fdSetSize, spare = 1024, 64
	lim := nofile()
	switch {
	case lim >= int64(fdSetSize+n+spare):
		return fdSetSize
	case lim < int64(2*n+spare):
		b.Skipf("RLIMIT_NOFILE is %d; %d connections need %d fds in this process", lim, n, 2*n+spare)
	case be == poller.Select && 2*n+spare > fdSetSize:
		b.Skipf("RLIMIT_NOFILE is %d; select at %d connections needs %d", lim, n, fdSetSize+n+spare)
	}
	return 0
}

// nofile returns the soft RLIMIT_NOFILE.
func nofile() int64 {
	var rl unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
		return 0
	}
	return int64(rl.Cur)
}

// dialRaw connects a blocking TCP socket with TCP_NODELAY to addr, moved to
// the lowest free fd at or above base when base > 0, close-on-exec.
func dialRaw(addr *net.TCPAddr, base int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	if base > 0 {
		moved, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, base)
		unix.Close(fd)
		if err != nil {
			return -1, os.NewSyscallError("fcntl", err)
		}
		fd = moved
	} else {
		unix.CloseOnExec(fd)
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("setsockopt", err)
	}
	sa := &unix.SockaddrInet4{Port: addr.Port}
	copy(sa.Addr[:], addr.IP.To4())
	if err := unix.Connect(fd, sa); err != nil {
		unix.Close(fd)
		return -1, os.NewSyscallError("connect", err)
	}
	return fd, nil
}

// writeFull writes all of p to the blocking fd.
func writeFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Write(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("write", err)
		}
		p = p[n:]
	}
	return nil
}

// readFull reads exactly len(p) bytes from the blocking fd.
func readFull(fd int, p []byte) error {
	for len(p) > 0 {
		n, err := unix.Read(fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return os.NewSyscallError("read", err)
		}
		if n == 0 {
			return fmt.Errorf("fd %d: unexpected end of file", fd)
		}
		p = p[n:]
	}
	return nil
}

// memoryNow returns VmRSS and the live Go heap in bytes after a full
// collection that gives freed memory back to the OS.
func memoryNow(b *testing.B) (rss, heap int64) {
	b.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatalf("VmRSS: %q: %v", v, err)
			}
			return kb << 10, int64(ms.HeapAlloc)
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0, 0
}
