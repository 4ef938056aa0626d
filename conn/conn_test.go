package conn_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/conn"
)

// ---- fixtures ----

// socketpair returns a connected pair of unix stream sockets: a for a Conn
// (not yet wrapped; the caller passes it to newConn, which takes it over)
// and peer, non-blocking, closed when the test ends.
func socketpair(tb testing.TB) (a, peer int) {
	tb.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		tb.Fatalf("socketpair: %v", err)
	}
	nonblock(tb, fds[1])
	closeLater(tb, fds[1])
	return fds[0], fds[1]
}

// newConn wraps fd in a Conn that is closed when the test ends.
func newConn(tb testing.TB, fd int, lim *conn.Limits) *conn.Conn {
	tb.Helper()
	c, err := conn.New(fd, lim)
	if err != nil {
		unix.Close(fd)
		tb.Fatalf("New(%d): %v", fd, err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

// pair returns a Conn over one end of a socketpair and the other end.
func pair(tb testing.TB, lim *conn.Limits) (*conn.Conn, int) {
	tb.Helper()
	a, peer := socketpair(tb)
	return newConn(tb, a, lim), peer
}

func closeLater(tb testing.TB, fds ...int) {
	tb.Cleanup(func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	})
}

func nonblock(tb testing.TB, fd int) {
	tb.Helper()
	if err := unix.SetNonblock(fd, true); err != nil {
		tb.Fatalf("SetNonblock(%d): %v", fd, err)
	}
}

// setSndBuf makes fd's send buffer small, so that writes queue early.
func setSndBuf(tb testing.TB, fd, n int) {
	tb.Helper()
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, n); err != nil {
		tb.Fatalf("SO_SNDBUF: %v", err)
	}
}

func mustWrite(tb testing.TB, fd int, p []byte) {
	tb.Helper()
	if n, err := unix.Write(fd, p); err != nil || n != len(p) {
		tb.Fatalf("write(%d): n=%d err=%v", fd, n, err)
	}
}

// fill writes to fd (bypassing any Conn) until the kernel takes nothing
// more, even a single byte, and returns how many bytes it wrote. It makes
// fd non-blocking, as New would.
func fill(tb testing.TB, fd int) int {
	tb.Helper()
	nonblock(tb, fd)
	var buf [16 << 10]byte
	total := 0
	for size := len(buf); size > 0; size /= 4 {
		for {
			n, err := unix.Write(fd, buf[:size])
			if err == unix.EAGAIN {
				break
			}
			if err != nil {
				tb.Fatalf("fill: write(%d): %v", fd, err)
			}
			total += n
		}
	}
	return total
}

// drain reads fd until it would block and appends what it read to got.
func drain(tb testing.TB, fd int, got []byte, scratch []byte) []byte {
	tb.Helper()
	for {
		n, err := unix.Read(fd, scratch)
		if err == unix.EAGAIN {
			return got
		}
		if err != nil {
			tb.Fatalf("drain: read(%d): %v", fd, err)
		}
		if n == 0 {
			return got
		}
		got = append(got, scratch[:n]...)
	}
}

// readSome reads at most n bytes from fd without blocking and appends them.
func readSome(tb testing.TB, fd, n int, got []byte) []byte {
	tb.Helper()
	buf := make([]byte, 4096)
	for n > 0 {
		k, err := unix.Read(fd, buf[:min(n, len(buf))])
		if err == unix.EAGAIN || k == 0 {
			break
		}
		if err != nil {
			tb.Fatalf("readSome: read(%d): %v", fd, err)
		}
		got = append(got, buf[:k]...)
		n -= k
	}
	return got
}

// flushAll alternates Flush on c with draining peer until c's queue is empty
// and the kernel holds nothing more, and returns got with everything read
// appended. Both ends are non-blocking, and once the peer has read all there
// is a unix socket has room again, so every Flush must make progress: one
// that does not fails the test instead of spinning.
func flushAll(tb testing.TB, c *conn.Conn, peer int, got []byte) []byte {
	tb.Helper()
	scratch := make([]byte, 256<<10)
	for {
		got = drain(tb, peer, got, scratch)
		if c.Pending() == 0 {
			return drain(tb, peer, got, scratch)
		}
		flushOnce(tb, c)
	}
}

// flushOnce calls Flush, after the peer has read everything, and fails if
// it made no progress.
func flushOnce(tb testing.TB, c *conn.Conn) {
	before := c.Pending()
	if err := c.Flush(); err != nil {
		tb.Fatalf("Flush: %v", err)
	}
	if c.Pending() == before {
		tb.Fatalf("Flush to an emptied socket made no progress: Pending() = %d", before)
	}
}

// discard reads fd until it would block, into buf, keeping nothing. It does
// not allocate.
func discard(fd int, buf []byte) {
	for {
		if n, err := unix.Read(fd, buf); err != nil || n == 0 {
			return
		}
	}
}

// flushDiscard is flushAll for a caller that does not check the bytes. It
// does not allocate unless it fails.
func flushDiscard(tb testing.TB, c *conn.Conn, peer int, buf []byte) {
	for c.Pending() > 0 {
		discard(peer, buf)
		flushOnce(tb, c)
	}
	discard(peer, buf)
}

// pattern returns n bytes of a stream whose byte at offset k depends on k
// (not periodically within 16 MiB), so reordered, repeated or lost chunks
// show as a mismatch.
func pattern(off, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		k := off + i
		p[i] = byte(k) ^ byte(k>>8)*7 ^ byte(k>>16)*13
	}
	return p
}

// equalBytes fails the test at the first differing offset.
func equalBytes(tb testing.TB, got, want []byte) {
	tb.Helper()
	if bytes.Equal(got, want) {
		return
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	tb.Fatalf("received %d bytes, want %d; first difference at offset %d", len(got), len(want), i)
}

// waitReadable waits (with poll(2), up to 5 s) until fd is readable or has an
// error or hang-up pending.
func waitReadable(tb testing.TB, fd int) {
	tb.Helper()
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 5000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			tb.Fatalf("poll(%d): n=%d err=%v", fd, n, err)
		}
		return
	}
}

// tcpPair returns the two ends of a loopback TCP connection of family
// (AF_INET or AF_INET6): srv, the accepted end, and cli, non-blocking and
// closed when the test ends. It skips the test if the family's loopback
// address is unavailable.
func tcpPair(tb testing.TB, family int) (srv, cli int) {
	tb.Helper()
	srv, cli, err := dialLoopback(family)
	if errors.Is(err, errNoLoopback) {
		tb.Skip(err)
	}
	if err != nil {
		tb.Fatal(err)
	}
	closeLater(tb, cli)
	return srv, cli
}

var errNoLoopback = errors.New("no loopback address for this family")

// dialLoopback connects two sockets of family over loopback and returns the
// accepted end and the non-blocking connecting end; the caller closes both.
func dialLoopback(family int) (srv, cli int, err error) {
	var addr unix.Sockaddr = &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}
	if family == unix.AF_INET6 {
		addr = &unix.SockaddrInet6{Addr: [16]byte{15: 1}}
	}
	ln, err := unix.Socket(family, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socket(family %d): %v: %w", family, err, errNoLoopback)
	}
	defer unix.Close(ln)
	if err := unix.Bind(ln, addr); err != nil {
		return -1, -1, fmt.Errorf("bind: %v: %w", err, errNoLoopback)
	}
	if err := unix.Listen(ln, 1); err != nil {
		return -1, -1, fmt.Errorf("listen: %w", err)
	}
	lsa, err := unix.Getsockname(ln)
	if err != nil {
		return -1, -1, fmt.Errorf("getsockname: %w", err)
	}
	cli, err = unix.Socket(family, unix.SOCK_STREAM, 0)
	if err != nil {
		return -1, -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Connect(cli, lsa); err != nil { // blocking; loopback completes at once
		unix.Close(cli)
		return -1, -1, fmt.Errorf("connect: %w", err)
	}
	srv, _, err = unix.Accept(ln) // the connection is already queued
	if err == nil {
		err = unix.SetNonblock(cli, true)
	}
	if err != nil {
		unix.Close(cli)
		return -1, -1, fmt.Errorf("accept: %w", err)
	}
	return srv, cli, nil
}

// reset makes fd send an RST: SO_LINGER with a zero timeout, then close.
func reset(tb testing.TB, fd int) {
	tb.Helper()
	if err := unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		tb.Fatalf("SO_LINGER: %v", err)
	}
	if err := unix.Close(fd); err != nil {
		tb.Fatalf("close: %v", err)
	}
}

// ---- Read ----

func TestReadWouldBlock(t *testing.T) {
	c, _ := pair(t, nil)
	n, err := c.Read(make([]byte, 16))
	if n != 0 || err != conn.ErrWouldBlock {
		t.Fatalf("Read with no data = %d, %v; want 0, ErrWouldBlock", n, err)
	}
	if !errors.Is(err, unix.EAGAIN) {
		t.Errorf("errors.Is(ErrWouldBlock, unix.EAGAIN) = false")
	}
	if got, want := err.Error(), "conn: operation would block"; got != want {
		t.Errorf("ErrWouldBlock.Error() = %q, want %q", got, want)
	}
}

func TestReadZeroLength(t *testing.T) {
	c, peer := pair(t, nil)
	mustWrite(t, peer, []byte("x"))
	if n, err := c.Read(nil); n != 0 || err != nil {
		t.Fatalf("Read(nil) = %d, %v; want 0, nil", n, err)
	}
	// The byte is still there.
	var b [4]byte
	if n, err := c.Read(b[:]); n != 1 || err != nil {
		t.Fatalf("Read = %d, %v; want 1, nil", n, err)
	}
}

func TestReadDataThenEOF(t *testing.T) {
	c, peer := pair(t, nil)
	mustWrite(t, peer, []byte("hello, world"))
	if err := unix.Shutdown(peer, unix.SHUT_WR); err != nil {
		t.Fatal(err)
	}
	var got []byte
	buf := make([]byte, 5) // several reads
	for {
		n, err := c.Read(buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		got = append(got, buf[:n]...)
	}
	if diff := cmp.Diff("hello, world", string(got)); diff != "" {
		t.Errorf("data before EOF (-want +got):\n%s", diff)
	}
	if _, err := c.Read(buf); err != io.EOF {
		t.Errorf("Read after EOF: %v, want io.EOF again", err)
	}
}

func TestReadEOFAfterPeerClose(t *testing.T) {
	a, peer := socketpair(t)
	c := newConn(t, a, nil)
	mustWrite(t, peer, []byte("bye"))
	unix.Close(peer) // the cleanup's second close of peer fails harmlessly
	buf := make([]byte, 16)
	if n, err := c.Read(buf); n != 3 || err != nil || string(buf[:n]) != "bye" {
		t.Fatalf("Read = %d %q, %v; want 3 \"bye\", nil", n, buf[:n], err)
	}
	if n, err := c.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("Read after data = %d, %v; want 0, io.EOF", n, err)
	}
}

// ---- Write and Flush ----

func TestWriteDirect(t *testing.T) {
	c, peer := pair(t, nil)
	if n, err := c.Write([]byte("ping")); n != 4 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if c.Pending() != 0 {
		t.Fatalf("Pending() = %d after a small Write, want 0", c.Pending())
	}
	got := drain(t, peer, nil, make([]byte, 64))
	if string(got) != "ping" {
		t.Fatalf("peer read %q, want \"ping\"", got)
	}
	if n, err := c.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v; want 0, nil", n, err)
	}
	if err := c.Flush(); err != nil {
		t.Fatalf("Flush of an empty queue: %v", err)
	}
}

// A Write far larger than the socket buffer returns at once with the rest
// queued; the bytes arrive complete and in order as the peer reads and the
// test flushes.
func TestWriteLargeQueuesThenFlushes(t *testing.T) {
	const size = 8 << 20
	lim := &conn.Limits{MaxQueued: 16 << 20}
	c, peer := pair(t, lim)
	want := pattern(0, size)
	n, err := c.Write(want)
	if n != size || err != nil {
		t.Fatalf("Write(8 MiB) = %d, %v; want %d, nil", n, err, size)
	}
	if c.Pending() == 0 {
		t.Fatalf("Pending() = 0 after 8 MiB to a peer that does not read")
	}
	if !c.AboveHighWater() {
		t.Errorf("AboveHighWater() = false with Pending() = %d", c.Pending())
	}
	t.Logf("queued %d of %d bytes", c.Pending(), size)
	got := flushAll(t, c, peer, make([]byte, 0, size))
	equalBytes(t, got, want)
	if c.Pending() != 0 || !c.BelowLowWater() || c.AboveHighWater() {
		t.Errorf("after flushing: Pending()=%d BelowLowWater=%v AboveHighWater=%v",
			c.Pending(), c.BelowLowWater(), c.AboveHighWater())
	}
}

// Writes while something is queued go behind it without a syscall, even if
// the kernel has room again, so that they cannot overtake it.
func TestWriteBehindQueueWaitsForFlush(t *testing.T) {
	a, peer := socketpair(t)
	setSndBuf(t, a, 8<<10)
	c := newConn(t, a, nil)
	first := pattern(0, 100<<10)
	if _, err := c.Write(first); err != nil {
		t.Fatal(err)
	}
	if c.Pending() == 0 {
		t.Fatal("nothing queued")
	}
	scratch := make([]byte, 64<<10)
	got := drain(t, peer, nil, scratch) // the kernel has room now
	second := pattern(len(first), 10)
	if _, err := c.Write(second); err != nil {
		t.Fatal(err)
	}
	if more := drain(t, peer, nil, scratch); len(more) != 0 {
		t.Fatalf("a Write behind a non-empty queue reached the peer (%d bytes) before Flush", len(more))
	}
	got = flushAll(t, c, peer, got)
	equalBytes(t, got, append(first, second...))
}

// Several Writes of awkward sizes interleaved with partial reads and
// flushes arrive in order.
func TestWriteFlushInterleavedKeepsOrder(t *testing.T) {
	a, peer := socketpair(t)
	setSndBuf(t, a, 8<<10)
	c := newConn(t, a, &conn.Limits{MaxQueued: 1 << 20})
	var want, got []byte
	write := func(n int) {
		t.Helper()
		p := pattern(len(want), n)
		if k, err := c.Write(p); k != n || err != nil {
			t.Fatalf("Write(%d) = %d, %v", n, k, err)
		}
		want = append(want, p...)
	}
	flush := func() {
		t.Helper()
		if err := c.Flush(); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
	// 16360 is the payload of one chunk on 64-bit systems; the sizes around
	// it and around 16 KiB cross and end exactly on chunk boundaries.
	write(50000)
	got = readSome(t, peer, 3000, got)
	flush()
	write(1)
	write(16359)
	write(16360)
	write(16361)
	got = readSome(t, peer, 20000, got)
	write(7)
	flush()
	got = readSome(t, peer, 1, got)
	flush()
	write(16384)
	write(40000)
	got = readSome(t, peer, 100000, got)
	flush()
	write(3)
	if c.Pending() == 0 {
		t.Fatal("the test meant to keep the queue busy, but it emptied")
	}
	got = flushAll(t, c, peer, got)
	equalBytes(t, got, want)
}

// ---- limits ----

func TestQueueFull(t *testing.T) {
	lim := &conn.Limits{HighWater: 1000, LowWater: 500, MaxQueued: 4000}

	t.Run("queued", func(t *testing.T) {
		a, peer := socketpair(t)
		setSndBuf(t, a, 4<<10)
		filled := fill(t, a)
		c := newConn(t, a, lim)
		var want []byte
		write := func(n int, wantErr error) {
			t.Helper()
			before := c.Pending()
			p := pattern(len(want), n)
			k, err := c.Write(p)
			if err != wantErr {
				t.Fatalf("Write(%d) with Pending()=%d: %d, %v; want error %v", n, before, k, err, wantErr)
			}
			if err != nil {
				if k != 0 || c.Pending() != before {
					t.Fatalf("failed Write(%d) = %d and Pending() %d -> %d; want 0 and unchanged", n, k, before, c.Pending())
				}
				return
			}
			want = append(want, p...)
		}
		write(3000, nil)
		write(1001, conn.ErrQueueFull)
		write(1000, nil)
		if c.Pending() != 4000 {
			t.Fatalf("Pending() = %d, want 4000 (the cap)", c.Pending())
		}
		write(1, conn.ErrQueueFull)
		got := flushAll(t, c, peer, nil)
		equalBytes(t, got[filled:], want)
		write(4000, nil) // room again
	})

	t.Run("direct", func(t *testing.T) {
		// With an empty queue a Write larger than MaxQueued fails before any
		// syscall, even though the kernel could take part of it.
		c, peer := pair(t, lim)
		if n, err := c.Write(make([]byte, 4001)); n != 0 || !errors.Is(err, conn.ErrQueueFull) {
			t.Fatalf("Write(4001) = %d, %v; want 0, ErrQueueFull", n, err)
		}
		if got := drain(t, peer, nil, make([]byte, 8192)); len(got) != 0 {
			t.Fatalf("peer received %d bytes of a refused Write", len(got))
		}
		if n, err := c.Write(make([]byte, 4000)); n != 4000 || err != nil {
			t.Fatalf("Write(4000) = %d, %v; want 4000, nil", n, err)
		}
	})
}

func TestWatermarks(t *testing.T) {
	lim := &conn.Limits{HighWater: 1000, LowWater: 500, MaxQueued: 2000}
	a, peer := socketpair(t)
	setSndBuf(t, a, 4<<10)
	fill(t, a) // every Write below is queued whole
	c := newConn(t, a, lim)
	check := func(pending int, above, below bool) {
		t.Helper()
		if c.Pending() != pending || c.AboveHighWater() != above || c.BelowLowWater() != below {
			t.Fatalf("Pending()=%d AboveHighWater=%v BelowLowWater=%v; want %d %v %v",
				c.Pending(), c.AboveHighWater(), c.BelowLowWater(), pending, above, below)
		}
	}
	write := func(n int) {
		t.Helper()
		if k, err := c.Write(make([]byte, n)); k != n || err != nil {
			t.Fatalf("Write(%d) = %d, %v", n, k, err)
		}
	}
	check(0, false, true)
	write(500)
	check(500, false, true) // at LowWater: still below
	write(1)
	check(501, false, false)
	write(498)
	check(999, false, false)
	write(1)
	check(1000, true, false) // at HighWater: above
	write(1000)
	check(2000, true, false)

	// On the way down the marks follow Pending() wherever the kernel's
	// appetite leaves it.
	scratch := make([]byte, 512)
	for c.Pending() > 0 {
		before := c.Pending()
		n, _ := unix.Read(peer, scratch)
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
		p := c.Pending()
		if n <= 0 && p == before {
			t.Fatalf("no progress: the peer read nothing and Flush left Pending() = %d", p)
		}
		check(p, p >= 1000, p <= 500)
	}
	check(0, false, true)

	// The defaults.
	d, _ := pair(t, nil)
	if d.AboveHighWater() || !d.BelowLowWater() {
		t.Errorf("an idle Conn with default Limits: AboveHighWater=%v BelowLowWater=%v", d.AboveHighWater(), d.BelowLowWater())
	}
}

func TestLimitsValidate(t *testing.T) {
	def := conn.DefaultLimits()
	if diff := cmp.Diff(conn.Limits{HighWater: 64 << 10, LowWater: 16 << 10, MaxQueued: 4 << 20}, def); diff != "" {
		t.Errorf("DefaultLimits() (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		lim conn.Limits
		ok  bool
	}{
		{conn.Limits{}, true},
		{def, true},
		{conn.Limits{HighWater: 10, LowWater: 10, MaxQueued: 10}, true},
		{conn.Limits{HighWater: 100, LowWater: 1}, true},                // MaxQueued defaults to 4 MiB
		{conn.Limits{LowWater: 64 << 10}, true},                         // = default HighWater
		{conn.Limits{HighWater: -1}, false},                             // negative
		{conn.Limits{LowWater: -1}, false},                              // negative
		{conn.Limits{MaxQueued: -1}, false},                             // negative
		{conn.Limits{HighWater: 10, LowWater: 11}, false},               // LowWater > HighWater
		{conn.Limits{LowWater: 64<<10 + 1}, false},                      // > default HighWater
		{conn.Limits{HighWater: 11, LowWater: 1, MaxQueued: 10}, false}, // HighWater > MaxQueued
		{conn.Limits{HighWater: 11}, false},                             // default LowWater > HighWater
		{conn.Limits{MaxQueued: 1000}, false},                           // < default HighWater
	} {
		err := tc.lim.Validate()
		if (err == nil) != tc.ok {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tc.lim, err, tc.ok)
		}
		if err != nil {
			t.Logf("%+v: %v", tc.lim, err)
		}
	}
	a, _ := socketpair(t)
	defer unix.Close(a)
	if c, err := conn.New(a, &conn.Limits{HighWater: -5}); err == nil {
		c.Close()
		t.Fatal("New with invalid Limits succeeded")
	}
}

// ---- New, Close ----

func TestNewSetsFlags(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0) // blocking, no CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, fds[1])
	c := newConn(t, fds[0], nil)
	if c.Fd() != fds[0] {
		t.Errorf("Fd() = %d, want %d", c.Fd(), fds[0])
	}
	fl, err := unix.FcntlInt(uintptr(c.Fd()), unix.F_GETFL, 0)
	if err != nil || fl&unix.O_NONBLOCK == 0 {
		t.Errorf("F_GETFL = %#x, %v; want O_NONBLOCK set", fl, err)
	}
	fd, err := unix.FcntlInt(uintptr(c.Fd()), unix.F_GETFD, 0)
	if err != nil || fd&unix.FD_CLOEXEC == 0 {
		t.Errorf("F_GETFD = %#x, %v; want FD_CLOEXEC set", fd, err)
	}
}

func TestNewBadFD(t *testing.T) {
	if c, err := conn.New(-1, nil); err == nil || !errors.Is(err, unix.EBADF) {
		t.Errorf("New(-1) = %v, %v; want an error matching EBADF", c, err)
	}
	a, _ := socketpair(t)
	unix.Close(a)
	c, err := conn.New(a, nil)
	if err == nil || !errors.Is(err, unix.EBADF) {
		t.Errorf("New(closed fd) = %v, %v; want an error matching EBADF", c, err)
	}
}

func TestUseAfterClose(t *testing.T) {
	a, peer := socketpair(t)
	setSndBuf(t, a, 4<<10)
	c := newConn(t, a, nil)
	if _, err := c.Write(make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	if c.Pending() == 0 {
		t.Fatal("nothing queued")
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if c.Pending() != 0 {
		t.Errorf("Pending() = %d after Close, want 0 (queue dropped)", c.Pending())
	}
	if c.Fd() != -1 {
		t.Errorf("Fd() = %d after Close, want -1", c.Fd())
	}
	if _, err := c.Read(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Read(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read(nil) after Close: %v, want net.ErrClosed", err)
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Write after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Flush(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Flush after Close: %v, want net.ErrClosed", err)
	}
	if err := c.CloseWrite(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("CloseWrite after Close: %v, want net.ErrClosed", err)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
	// The peer sees the connection end.
	got := drain(t, peer, nil, make([]byte, 64<<10))
	if n, err := unix.Read(peer, make([]byte, 1)); n != 0 || err != nil {
		t.Errorf("peer read after %d bytes = %d, %v; want end of file", len(got), n, err)
	}
}

// A second Close must not close the fd number again: the kernel hands it to
// the next socket, which may belong to another connection by then.
func TestDoubleCloseLeavesReusedFDAlone(t *testing.T) {
	a, _ := socketpair(t)
	c, err := conn.New(a, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	closeLater(t, fds[0], fds[1])
	if fds[0] != a && fds[1] != a {
		t.Logf("fd %d was not reused (got %v); checking anyway", a, fds)
	}
	if err := c.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
	for _, fd := range fds {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
			t.Errorf("fd %d closed behind its owner's back: %v", fd, err)
		}
	}
}

func TestCloseWrite(t *testing.T) {
	c, peer := pair(t, nil)
	if _, err := c.Write([]byte("last words")); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatalf("CloseWrite: %v", err)
	}
	got := drain(t, peer, nil, make([]byte, 64))
	if n, err := unix.Read(peer, make([]byte, 1)); string(got) != "last words" || n != 0 || err != nil {
		t.Fatalf("peer got %q then %d, %v; want \"last words\" then end of file", got, n, err)
	}
	// Still readable.
	mustWrite(t, peer, []byte("ok"))
	buf := make([]byte, 8)
	if n, err := c.Read(buf); n != 2 || err != nil {
		t.Fatalf("Read after CloseWrite = %d, %v", n, err)
	}
	if _, err := c.Write([]byte("more")); !errors.Is(err, unix.EPIPE) {
		t.Errorf("Write after CloseWrite: %v, want EPIPE", err)
	}
}

// ---- errors from the peer ----

// An RST from the peer surfaces as ECONNRESET (or EPIPE once the reset has
// been reported) from Read, Write and Flush, as *os.SyscallError, and never
// as a panic.
func TestPeerReset(t *testing.T) {
	isReset := func(err error) bool {
		return errors.Is(err, unix.ECONNRESET) || errors.Is(err, unix.EPIPE)
	}
	var se *os.SyscallError

	t.Run("read", func(t *testing.T) {
		srv, cli := tcpPair(t, unix.AF_INET)
		c := newConn(t, srv, nil)
		reset(t, cli)
		waitReadable(t, c.Fd())
		_, err := c.Read(make([]byte, 64))
		if !errors.Is(err, unix.ECONNRESET) || !errors.As(err, &se) || se.Syscall != "read" {
			t.Fatalf("Read after RST: %v; want *os.SyscallError read ECONNRESET", err)
		}
		if _, err := c.Write([]byte("x")); !isReset(err) {
			t.Fatalf("Write after RST: %v; want EPIPE or ECONNRESET", err)
		}
	})

	t.Run("write", func(t *testing.T) {
		srv, cli := tcpPair(t, unix.AF_INET)
		c := newConn(t, srv, nil)
		reset(t, cli)
		waitReadable(t, c.Fd())
		_, err := c.Write([]byte("hello"))
		if !isReset(err) || !errors.As(err, &se) || se.Syscall != "write" {
			t.Fatalf("Write after RST: %v; want *os.SyscallError write EPIPE or ECONNRESET", err)
		}
	})

	t.Run("flush", func(t *testing.T) {
		srv, cli := tcpPair(t, unix.AF_INET)
		setSndBuf(t, srv, 16<<10)
		if err := unix.SetsockoptInt(cli, unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10); err != nil {
			t.Fatal(err)
		}
		c := newConn(t, srv, &conn.Limits{MaxQueued: 32 << 20})
		if _, err := c.Write(pattern(0, 16<<20)); err != nil {
			t.Fatal(err)
		}
		if c.Pending() == 0 {
			t.Fatal("nothing queued")
		}
		reset(t, cli)
		waitReadable(t, c.Fd())
		err := c.Flush()
		if !isReset(err) || !errors.As(err, &se) || se.Syscall != "writev" {
			t.Fatalf("Flush after RST: %v; want *os.SyscallError writev EPIPE or ECONNRESET", err)
		}
		if c.Pending() == 0 {
			t.Errorf("a failed Flush dropped the queue")
		}
		if err := c.Close(); err != nil {
			t.Errorf("Close after a reset: %v", err)
		}
	})
}

// ---- addresses ----

func TestAddrTCP(t *testing.T) {
	for _, tc := range []struct {
		name   string
		family int
		ip     net.IP
	}{
		{"tcp4", unix.AF_INET, net.IPv4(127, 0, 0, 1)},
		{"tcp6", unix.AF_INET6, net.IPv6loopback},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, cli := tcpPair(t, tc.family)
			c := newConn(t, srv, nil)
			csa, err := unix.Getsockname(cli)
			if err != nil {
				t.Fatal(err)
			}
			ssa, err := unix.Getpeername(cli)
			if err != nil {
				t.Fatal(err)
			}
			port := func(sa unix.Sockaddr) int {
				switch sa := sa.(type) {
				case *unix.SockaddrInet4:
					return sa.Port
				case *unix.SockaddrInet6:
					return sa.Port
				}
				return -1
			}
			local, remote := c.LocalAddr(), c.RemoteAddr()
			eqIP := cmp.Comparer(func(a, b net.IP) bool { return a.Equal(b) })
			if diff := cmp.Diff(&net.TCPAddr{IP: tc.ip, Port: port(ssa)}, local, eqIP); diff != "" {
				t.Errorf("LocalAddr (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(&net.TCPAddr{IP: tc.ip, Port: port(csa)}, remote, eqIP); diff != "" {
				t.Errorf("RemoteAddr (-want +got):\n%s", diff)
			}
			if local.Network() != "tcp" {
				t.Errorf("LocalAddr().Network() = %q", local.Network())
			}
			if c.LocalAddr() != local || c.RemoteAddr() != remote {
				t.Errorf("addresses not cached: a second call returned a new value")
			}
			c.Close()
			if c.LocalAddr() != local || c.RemoteAddr() != remote {
				t.Errorf("cached addresses lost at Close")
			}
		})
	}
}

func TestAddrUnix(t *testing.T) {
	t.Run("socketpair", func(t *testing.T) {
		c, _ := pair(t, nil)
		for _, a := range []net.Addr{c.LocalAddr(), c.RemoteAddr()} {
			ua, ok := a.(*net.UnixAddr)
			if !ok && runtime.GOOS == "linux" {
				t.Fatalf("address %#v, want a *net.UnixAddr", a)
			}
			if ok && ua.Network() != "unix" {
				t.Errorf("Network() = %q, want unix", ua.Network())
			}
		}
	})
	t.Run("bound", func(t *testing.T) {
		dir, err := os.MkdirTemp("", "conn") // short: sun_path holds ~100 bytes
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(dir)
		path := filepath.Join(dir, "s")
		ln, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(ln)
		if err := unix.Bind(ln, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		if err := unix.Listen(ln, 1); err != nil {
			t.Fatal(err)
		}
		cli, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		closeLater(t, cli)
		if err := unix.Connect(cli, &unix.SockaddrUnix{Name: path}); err != nil {
			t.Fatal(err)
		}
		srv, _, err := unix.Accept(ln)
		if err != nil {
			t.Fatal(err)
		}
		s := newConn(t, srv, nil)
		cc := newConn(t, cli, nil)
		if diff := cmp.Diff(&net.UnixAddr{Name: path, Net: "unix"}, s.LocalAddr()); diff != "" {
			t.Errorf("server LocalAddr (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(&net.UnixAddr{Name: path, Net: "unix"}, cc.RemoteAddr()); diff != "" {
			t.Errorf("client RemoteAddr (-want +got):\n%s", diff)
		}
	})
	t.Run("not a socket", func(t *testing.T) {
		var p [2]int
		if err := unix.Pipe(p[:]); err != nil {
			t.Fatal(err)
		}
		closeLater(t, p[1])
		c := newConn(t, p[0], nil)
		if a := c.LocalAddr(); a != nil {
			t.Errorf("LocalAddr of a pipe = %v, want nil", a)
		}
		if a := c.RemoteAddr(); a != nil {
			t.Errorf("RemoteAddr of a pipe = %v, want nil", a)
		}
	})
}

// Init sets up a Conn held by value exactly as New does, once.
func TestInit(t *testing.T) {
	a, peer := socketpair(t)
	var c conn.Conn
	if err := c.Init(-1, nil); !errors.Is(err, unix.EBADF) {
		t.Fatalf("Init(-1) = %v, want EBADF", err)
	}
	if err := c.Init(a, nil); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Init(a, nil); err == nil {
		t.Fatal("second Init succeeded")
	}
	if c.Fd() != a {
		t.Fatalf("Fd() = %d, want %d", c.Fd(), a)
	}
	if n, err := c.Write([]byte("hi")); n != 2 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	buf := make([]byte, 4)
	if n, err := unix.Read(peer, buf); n != 2 || err != nil {
		t.Fatalf("peer read = %d, %v", n, err)
	}
	if _, err := c.Read(buf); !errors.Is(err, conn.ErrWouldBlock) {
		t.Fatalf("Read = %v, want ErrWouldBlock (Init must set O_NONBLOCK)", err)
	}
}

// ---- cost ----

// A Conn is small and holds no buffer while idle.
func TestSizeof(t *testing.T) {
	size := unsafe.Sizeof(conn.Conn{})
	t.Logf("unsafe.Sizeof(conn.Conn{}) = %d", size)
	if words := size / unsafe.Sizeof(uintptr(0)); words > 6 {
		t.Errorf("Conn is %d words, want at most 6", words)
	}
}

func TestZeroAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items)")
	}
	t.Run("Read", func(t *testing.T) {
		c, peer := pair(t, nil)
		out, in := []byte("x"), make([]byte, 16)
		allocs := testing.AllocsPerRun(1000, func() {
			unix.Write(peer, out)
			if n, err := c.Read(in); n != 1 || err != nil {
				t.Fatalf("Read = %d, %v", n, err)
			}
		})
		if allocs != 0 {
			t.Errorf("Read: %v allocs, want 0", allocs)
		}
		allocs = testing.AllocsPerRun(1000, func() {
			if _, err := c.Read(in); err != conn.ErrWouldBlock {
				t.Fatalf("Read: %v", err)
			}
		})
		if allocs != 0 {
			t.Errorf("Read that would block: %v allocs, want 0", allocs)
		}
	})
	t.Run("Write direct", func(t *testing.T) {
		c, peer := pair(t, nil)
		out, in := make([]byte, 512), make([]byte, 4096)
		allocs := testing.AllocsPerRun(1000, func() {
			if n, err := c.Write(out); n != len(out) || err != nil || c.Pending() != 0 {
				t.Fatalf("Write = %d, %v, Pending() = %d", n, err, c.Pending())
			}
			unix.Read(peer, in)
		})
		if allocs != 0 {
			t.Errorf("direct Write: %v allocs, want 0", allocs)
		}
	})
	t.Run("Write queued and Flush", func(t *testing.T) {
		a, peer := socketpair(t)
		setSndBuf(t, a, 16<<10)
		c := newConn(t, a, nil)
		out, in := make([]byte, 256<<10), make([]byte, 64<<10)
		queued := 0
		allocs := testing.AllocsPerRun(200, func() {
			if _, err := c.Write(out); err != nil {
				t.Fatal(err)
			}
			queued += c.Pending()
			flushDiscard(t, c, peer, in)
		})
		if queued == 0 {
			t.Fatal("nothing was ever queued")
		}
		if allocs != 0 {
			t.Errorf("queued Write + Flush cycle: %v allocs, want 0", allocs)
		}
	})
}

// Opening, using and closing many Conns leaves no fd open.
func TestNoFDLeak(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	count := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	count() // let the runtime open whatever it opens once
	before := count()
	for i := 0; i < 50; i++ {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		setSndBuf(t, fds[0], 4<<10)
		c, err := conn.New(fds[0], nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(make([]byte, 64<<10)) // leave some queued
		c.LocalAddr()
		c.Close()
		c.Close()
		unix.Close(fds[1])
		if c, err := conn.New(fds[1], nil); err == nil { // closed: refused
			c.Close()
			t.Fatal("New of a closed fd succeeded")
		}
	}
	for i := 0; i < 10; i++ {
		srv, cli, err := dialLoopback(unix.AF_INET)
		if err != nil {
			t.Fatal(err)
		}
		c, err := conn.New(srv, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.RemoteAddr()
		reset(t, cli)
		waitReadable(t, c.Fd())
		c.Read(make([]byte, 8))
		c.Close()
	}
	if after := count(); after != before {
		t.Errorf("open fds: %d before, %d after", before, after)
	}
}
