package stress

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/servers"
)

// long reports whether the long versions of the stress tests run: with
// REACTOR_STRESS=long in the environment (.ci/run sets it), and not with
// -short. Without it each test runs its short version, a few seconds, so
// that go test ./... stays quick on a fresh clone.
func long() bool { return os.Getenv("REACTOR_STRESS") == "long" && !testing.Short() }

// ioTimeout bounds every client read and write: a server that does not
// answer fails the test instead of hanging it.
const ioTimeout = 10 * time.Second

// start serves s on a loopback port and returns the address. When the test
// ends s is shut down, and Serve must have returned ErrServerClosed.
func start(t *testing.T, s servers.Server) string {
	addr, _ := servertest.Start(t, s, servertest.Clean)
	return addr
}

// dial connects to addr; the connection is closed when the test ends.
func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// roundTrip sends msg on c and reads its echo into buf (len(msg) bytes of
// it), within ioTimeout.
func roundTrip(c net.Conn, msg, buf []byte) error {
	c.SetDeadline(time.Now().Add(ioTimeout))
	if _, err := c.Write(msg); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got := buf[:len(msg)]
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("read echo of %d bytes: %w", len(msg), err)
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

// reset closes c with SO_LINGER 0: the kernel sends RST instead of FIN and
// drops whatever c had not sent.
func reset(c *net.TCPConn) error {
	if err := c.SetLinger(0); err != nil {
		return err
	}
	return c.Close()
}

// waitFor polls cond until it holds; it fails the test after d.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, with a deadline
	}
}

// tcpSocket is one row of /proc/net/tcp.
type tcpSocket struct {
	state    int // 0x01 ESTABLISHED, 0x08 CLOSE_WAIT, 0x0A LISTEN, ...
	txq, rxq int // bytes queued to send / received unread; rxq of a listener is its accept queue
	timer    int // 0 none, 1 retransmit, 2 keepalive, 3 TIME_WAIT, 4 zero window probe
}

// TCP states and timers as /proc/net/tcp numbers them.
const (
	tcpEstablished = 0x01
	tcpCloseWait   = 0x08
	tcpListen      = 0x0A
	timerProbe0    = 4 // the peer's receive window is zero and we have bytes to send
)

// procAddr is a as /proc/net/tcp prints it: the IPv4 address as the
// 32-bit number in memory, in hex, then the port in hex.
func procAddr(a net.Addr) string {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta.IP.To4() == nil {
		return "?"
	}
	return fmt.Sprintf("%08X:%04X", binary.NativeEndian.Uint32(ta.IP.To4()), ta.Port)
}

// tcpSocketOf finds the socket with local address local and remote address
// remote (nil: any, for a listener) in /proc/net/tcp. The test is skipped
// where /proc/net/tcp does not exist.
func tcpSocketOf(t testing.TB, local, remote net.Addr) (tcpSocket, bool) {
	t.Helper()
	ss, found := tcpSockets(t, [2]net.Addr{local, remote})
	return ss[0], found[0]
}

// tcpSockets finds the sockets with the given local and remote addresses
// (remote nil: any) in one read of /proc/net/tcp, which lists every TCP
// socket of the system, TIME_WAIT ones included: tens of thousands after
// a churn, so one read may take milliseconds.
func tcpSockets(t testing.TB, want ...[2]net.Addr) ([]tcpSocket, []bool) {
	t.Helper()
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Skip("socket states are read from /proc/net/tcp:", err)
	}
	defer f.Close()
	keys := make([][2]string, len(want))
	for i, w := range want {
		keys[i] = [2]string{procAddr(w[0]), "00000000:0000"}
		if w[1] != nil {
			keys[i][1] = procAddr(w[1])
		}
	}
	ss, found := make([]tcpSocket, len(want)), make([]bool, len(want))
	sc := bufio.NewScanner(f)
	sc.Scan() // the header
	for sc.Scan() {
		// sl local rem st tx_queue:rx_queue tr:tm->when ...
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			continue
		}
		i := slices.Index(keys, [2]string{fs[1], fs[2]})
		if i < 0 {
			continue
		}
		st, err1 := strconv.ParseInt(fs[3], 16, 64)
		tx, rx, _ := strings.Cut(fs[4], ":")
		txq, err2 := strconv.ParseInt(tx, 16, 64)
		rxq, err3 := strconv.ParseInt(rx, 16, 64)
		tr, _, _ := strings.Cut(fs[5], ":")
		timer, err4 := strconv.ParseInt(tr, 16, 64)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			t.Fatalf("/proc/net/tcp row %q: %v", sc.Text(), err)
		}
		ss[i], found[i] = tcpSocket{state: int(st), txq: int(txq), rxq: int(rxq), timer: int(timer)}, true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ss, found
}

// acceptQueue is the number of connections waiting in the accept queue of
// the listener at addr: the rx_queue of its LISTEN row in /proc/net/tcp.
// (The same idea as the root package's test helper of that name.)
func acceptQueue(t testing.TB, addr string) int {
	t.Helper()
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s, ok := tcpSocketOf(t, ta, nil)
	if !ok || s.state != tcpListen {
		t.Fatalf("no listener on %s in /proc/net/tcp", addr)
	}
	return s.rxq
}

// vmRSS is the process's resident set size, from /proc/self/status; the
// test is skipped where that does not exist.
func vmRSS(t testing.TB) int64 {
	t.Helper()
	rss, err := readRSS()
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("RSS is read from /proc/self/status:", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return rss
}

// readRSS is vmRSS for any goroutine.
func readRSS() (int64, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS line %q: %v", line, err)
			}
			return kb << 10, nil
		}
	}
	return 0, errors.New("no VmRSS line in /proc/self/status")
}

// latencies summarises round-trip times: p50, p99 and the maximum.
type latencies []time.Duration

func (l latencies) quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func (l latencies) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(l), l.quantile(0.50), l.quantile(0.99), l.quantile(1))
}

// ends records how the server ended each client's connection, by the
// client's address (the server's remote address). Safe from any goroutine.
type ends struct {
	// sndbuf, if set, is the SO_SNDBUF the handlers give each connection
	// before serving it.
	sndbuf int

	mu sync.Mutex
	m  map[string]error
}

func (e *ends) record(client string, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.m == nil {
		e.m = make(map[string]error)
	}
	e.m[client] = err
}

// of returns the reason the server gave for the client at addr, and
// whether it has ended that connection yet.
func (e *ends) of(addr net.Addr) (error, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	err, ok := e.m[addr.String()]
	return err, ok
}

// echo is servers.Echo, recording why each client's handler returned.
func (e *ends) echo(c *servers.Conn) error {
	client := c.RemoteAddr().String()
	if e.sndbuf > 0 {
		if err := unix.SetsockoptInt(c.Fd(), unix.SOL_SOCKET, unix.SO_SNDBUF, e.sndbuf); err != nil {
			e.record(client, err)
			return err
		}
	}
	err := servers.Echo(c)
	e.record(client, err)
	return err
}

// handler is reactor.Echo, recording each connection's OnClose reason.
func (e *ends) handler() reactor.Handler {
	return reactor.HandlerFuncs{
		Open: func(c *reactor.Conn) {
			c.SetContext(c.RemoteAddr().String())
			if e.sndbuf > 0 {
				if err := unix.SetsockoptInt(c.Fd(), unix.SOL_SOCKET, unix.SO_SNDBUF, e.sndbuf); err != nil {
					c.Close() // OnClose records a nil reason: the test fails
				}
			}
		},
		Data: reactor.Echo.OnData,
		Close: func(c *reactor.Conn, err error) {
			e.record(c.Context().(string), err)
		},
	}
}

// errnoOf names the errno in err, for logs: "ECONNRESET", "EOF", "nil".
func errnoOf(err error) string {
	var en unix.Errno
	switch {
	case err == nil:
		return "nil"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.As(err, &en):
		return unix.ErrnoName(en)
	}
	return err.Error()
}

// raceEnabled reports whether the test binary was built with -race, whose
// shadow memory grows with every allocation, so that resident memory then
// says nothing about the server.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}
