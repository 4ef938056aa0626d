package netconn

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// The socket-option tests read the options back with getsockopt, whose
// names and value conventions (TCP_KEEPIDLE, a doubled SO_RCVBUF, 1 for a
// set flag) are linux's.

// tcpOpts is what getsockopt reads of a TCP socket's options.
type tcpOpts struct {
	NoDelay, KeepAlive      bool
	Idle, Interval, Count   int // TCP_KEEPIDLE, TCP_KEEPINTVL (seconds), TCP_KEEPCNT
	Linger                  unix.Linger
	ReadBuffer, WriteBuffer int // SO_RCVBUF, SO_SNDBUF
}

// readTCPOpts reads fd's options.
func readTCPOpts(t *testing.T, fd int) tcpOpts {
	t.Helper()
	get := func(level, opt int) int {
		v, err := unix.GetsockoptInt(fd, level, opt)
		if err != nil {
			t.Fatalf("getsockopt(%d, %d): %v", level, opt, err)
		}
		return v
	}
	l, err := unix.GetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER)
	if err != nil {
		t.Fatalf("getsockopt(SO_LINGER): %v", err)
	}
	return tcpOpts{
		NoDelay:     get(unix.IPPROTO_TCP, unix.TCP_NODELAY) != 0,
		KeepAlive:   get(unix.SOL_SOCKET, unix.SO_KEEPALIVE) != 0,
		Idle:        get(unix.IPPROTO_TCP, unix.TCP_KEEPIDLE),
		Interval:    get(unix.IPPROTO_TCP, unix.TCP_KEEPINTVL),
		Count:       get(unix.IPPROTO_TCP, unix.TCP_KEEPCNT),
		Linger:      *l,
		ReadBuffer:  get(unix.SOL_SOCKET, unix.SO_RCVBUF),
		WriteBuffer: get(unix.SOL_SOCKET, unix.SO_SNDBUF),
	}
}

// connOpts reads c's options through its SyscallConn.
func connOpts(t *testing.T, c *Conn) tcpOpts {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var o tcpOpts
	if err := rc.Control(func(fd uintptr) { o = readTCPOpts(t, int(fd)) }); err != nil {
		t.Fatalf("Control: %v", err)
	}
	return o
}

// kernelDefaults reads the options of a fresh TCP socket: what a
// connection has where netconn sets nothing.
func kernelDefaults(t *testing.T) tcpOpts {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	return readTCPOpts(t, fd)
}

// keepAliveOpts picks the options SetTCPDefaults is about.
func keepAliveOpts(o tcpOpts) tcpOpts {
	return tcpOpts{NoDelay: o.NoDelay, KeepAlive: o.KeepAlive, Idle: o.Idle, Interval: o.Interval, Count: o.Count}
}

// TestTCPDefaults checks that accepted and dialled TCP connections get Go's
// net defaults: TCP_NODELAY, and keep-alive probes after 15 s idle, every
// 15 s, 9 of them; that Config.KeepAlive sets the idle time (rounded up to
// a second) and a negative one leaves keep-alive off and its timing the
// kernel's.
func TestTCPDefaults(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		def := kernelDefaults(t)
		for _, tc := range []struct {
			name      string
			keepAlive time.Duration
			want      tcpOpts
		}{
			{"default", 0, tcpOpts{NoDelay: true, KeepAlive: true, Idle: 15, Interval: 15, Count: 9}},
			{"30s", 30 * time.Second, tcpOpts{NoDelay: true, KeepAlive: true, Idle: 30, Interval: 15, Count: 9}},
			{"1.5s", 1500 * time.Millisecond, tcpOpts{NoDelay: true, KeepAlive: true, Idle: 2, Interval: 15, Count: 9}},
			{"off", -1, tcpOpts{NoDelay: true, KeepAlive: false, Idle: def.Idle, Interval: def.Interval, Count: def.Count}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ke := &netEnv{b: e.b, g: e.g, cfg: Config{Group: e.g, KeepAlive: tc.keepAlive}}
				c, s := ke.pair(t, "tcp")
				for _, end := range []struct {
					name string
					c    *Conn
				}{{"dialled", c}, {"accepted", s}} {
					if diff := cmp.Diff(tc.want, keepAliveOpts(connOpts(t, end.c))); diff != "" {
						t.Errorf("%s connection with KeepAlive %v (-want +got):\n%s", end.name, tc.keepAlive, diff)
					}
				}
			})
		}
	})
}

// TestConnOptions checks that each TCP option method changes what
// getsockopt reads, and fails with net.ErrClosed after Close.
func TestConnOptions(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		c, _ := e.pair(t, "tcp")
		check := func(what string, err error, read func(tcpOpts) any, want any) {
			t.Helper()
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
			if diff := cmp.Diff(want, read(connOpts(t, c))); diff != "" {
				t.Errorf("after %s (-want +got):\n%s", what, diff)
			}
		}
		noDelay := func(o tcpOpts) any { return o.NoDelay }
		keepAlive := func(o tcpOpts) any { return o.KeepAlive }
		idle := func(o tcpOpts) any { return o.Idle }
		linger := func(o tcpOpts) any { return o.Linger }
		check("SetNoDelay(false)", c.SetNoDelay(false), noDelay, false)
		check("SetNoDelay(true)", c.SetNoDelay(true), noDelay, true)
		check("SetKeepAlive(false)", c.SetKeepAlive(false), keepAlive, false)
		check("SetKeepAlive(true)", c.SetKeepAlive(true), keepAlive, true)
		check("SetKeepAlivePeriod(20s)", c.SetKeepAlivePeriod(20*time.Second), idle, 20)
		check("SetKeepAlivePeriod(2500ms)", c.SetKeepAlivePeriod(2500*time.Millisecond), idle, 3)
		check("SetLinger(0)", c.SetLinger(0), linger, unix.Linger{Onoff: 1, Linger: 0})
		check("SetLinger(7)", c.SetLinger(7), linger, unix.Linger{Onoff: 1, Linger: 7})
		// Off, linux keeps the time it had; only Onoff tells.
		check("SetLinger(-1)", c.SetLinger(-1), func(o tcpOpts) any { return o.Linger.Onoff }, int32(0))

		// The kernel doubles a buffer size (for its bookkeeping) and
		// clamps it, so a size reads back at least as set; two sizes in a
		// row must read back differently, or the setter did nothing.
		for _, buf := range []struct {
			name string
			set  func(int) error
			read func(tcpOpts) int
		}{
			{"SetReadBuffer", c.SetReadBuffer, func(o tcpOpts) int { return o.ReadBuffer }},
			{"SetWriteBuffer", c.SetWriteBuffer, func(o tcpOpts) int { return o.WriteBuffer }},
		} {
			var got []int
			for _, size := range []int{8 << 10, 32 << 10} {
				if err := buf.set(size); err != nil {
					t.Fatalf("%s(%d): %v", buf.name, size, err)
				}
				n := buf.read(connOpts(t, c))
				if n < size {
					t.Errorf("%s(%d): the kernel reports %d", buf.name, size, n)
				}
				got = append(got, n)
			}
			if got[0] >= got[1] {
				t.Errorf("%s(8 KiB) then (32 KiB): the kernel reports %d then %d, want a larger second size", buf.name, got[0], got[1])
			}
		}

		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		for name, err := range map[string]error{
			"SetNoDelay":         c.SetNoDelay(true),
			"SetKeepAlive":       c.SetKeepAlive(true),
			"SetKeepAlivePeriod": c.SetKeepAlivePeriod(time.Second),
			"SetLinger":          c.SetLinger(0),
			"SetReadBuffer":      c.SetReadBuffer(8 << 10),
			"SetWriteBuffer":     c.SetWriteBuffer(8 << 10),
		} {
			checkClosed(t, name+" after Close", err)
			var oe *net.OpError
			if !errors.As(err, &oe) {
				t.Errorf("%s after Close: %T is not a *net.OpError", name, err)
			}
		}
	})
}
