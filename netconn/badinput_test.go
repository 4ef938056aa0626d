package netconn

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/badinput"
	"github.com/muxkit/reactor/internal/sock"
)

// TestBadInput feeds the package's exported functions the inputs a caller
// gets wrong: networks it does not serve, bad and refused addresses, an
// ended context, a closed group, calls after Close, datagrams to
// addresses a socket cannot reach. Each must give a clear error (the
// documented sentinel where there is one, else what package net's
// counterpart gives), never a panic or a hang; where the documented answer
// is success (a zero-length read or write), that is asserted instead. The
// rows use the shared group, as a caller of Listen and Dial does.
func TestBadInput(t *testing.T) {
	netCheckLeaks(t)
	t.Setenv(reactor.BackendEnv, "")
	badinput.Run(t, append(netconnRows(), packetRows()...))
}

// biNetListener returns a Listen listener, closed when the test ends.
func biNetListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// biNetConn returns a Dial connection to an echo peer, closed when the
// test ends.
func biNetConn(t *testing.T) *Conn {
	t.Helper()
	ln := biNetListener(t)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*Conn)
}

// refusedAddr returns a loopback address bound but not listening: a
// connect to it is refused.
func refusedAddr(t *testing.T) string {
	t.Helper()
	fd, err := sock.Socket(unix.AF_INET)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*unix.SockaddrInet4).Port)
}

// closedGroup returns a Config on a group that has been closed.
func closedGroup(t *testing.T) Config {
	t.Helper()
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	return Config{Group: g}
}

func netconnRows() []badinput.Row {
	closedConn := func(fn func(c *Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			c := biNetConn(t)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error { return fn(c) }
		}
	}
	open := func(fn func(c *Conn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			c := biNetConn(t)
			return func() error { return fn(c) }
		}
	}
	longUnix := "/tmp/" + strings.Repeat("y", 200)
	return []badinput.Row{
		{Name: "netconn.Listen(udp)", Setup: badinput.Call(func() error {
			_, err := Listen("udp", "127.0.0.1:0")
			return err
		})},
		{Name: "netconn.Listen(port -1)", Setup: badinput.Call(func() error {
			_, err := Listen("tcp", "127.0.0.1:-1")
			return err
		})},
		{Name: "netconn.Listen(unix path too long)", Setup: badinput.Call(func() error {
			_, err := Listen("unix", longUnix)
			return err
		})},
		{Name: "netconn.Listen(address in use)", Want: unix.EADDRINUSE, Setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			return func() error {
				_, err := Listen("tcp", ln.Addr().String())
				return err
			}
		}},
		{Name: "netconn.Dial(sctp)", Setup: badinput.Call(func() error {
			_, err := Dial("sctp", "127.0.0.1:9")
			return err
		})},
		{Name: "netconn.Dial(udp, no port)", Setup: badinput.Call(func() error {
			_, err := Dial("udp", "127.0.0.1")
			return err
		})},
		{Name: "netconn.ListenPacket(tcp)", Setup: badinput.Call(func() error {
			_, err := ListenPacket("tcp", "127.0.0.1:0")
			return err
		})},
		{Name: "netconn.ListenPacket(udp4 on an IPv6 address)", Setup: badinput.Call(func() error {
			_, err := ListenPacket("udp4", "[::1]:0")
			return err
		})},
		{Name: "netconn.ListenPacket(unixgram, no path)", Setup: badinput.Call(func() error {
			_, err := ListenPacket("unixgram", "")
			return err
		})},
		{Name: "netconn.Dial(empty address)", Want: errMissingAddress, Setup: badinput.Call(func() error {
			_, err := Dial("tcp", "")
			return err
		})},
		{Name: "netconn.Dial(garbage address)", Setup: badinput.Call(func() error {
			_, err := Dial("tcp", "no port here")
			return err
		})},
		{Name: "netconn.Dial(refused)", Want: unix.ECONNREFUSED, Setup: func(t *testing.T) func() error {
			addr := refusedAddr(t)
			return func() error {
				_, err := Dial("tcp", addr)
				return err
			}
		}},
		{Name: "netconn.Dial(unix, no such socket)", Setup: badinput.Call(func() error {
			_, err := Dial("unix", "/nonexistent/netconn-badinput.sock")
			return err
		})},
		{Name: "netconn.DialContext(canceled ctx)", Want: context.Canceled, Setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			return func() error {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				_, err := DialContext(ctx, "tcp", ln.Addr().String())
				return err
			}
		}},
		{Name: "netconn.Config.Listen(closed Group)", Want: reactor.ErrLoopClosed, Setup: func(t *testing.T) func() error {
			cfg := closedGroup(t)
			return func() error {
				_, err := cfg.Listen("tcp", "127.0.0.1:0")
				return err
			}
		}},
		{Name: "netconn.Config.Dial(closed Group)", Want: reactor.ErrLoopClosed, Setup: func(t *testing.T) func() error {
			cfg := closedGroup(t)
			ln := biNetListener(t)
			return func() error {
				_, err := cfg.Dial("tcp", ln.Addr().String())
				return err
			}
		}},
		{Name: "netconn.Listen listener Accept after Close", Want: net.ErrClosed, Setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error {
				_, err := ln.Accept()
				return err
			}
		}},
		{Name: "netconn.Listen listener Close twice", Want: net.ErrClosed, Setup: func(t *testing.T) func() error {
			ln := biNetListener(t)
			if err := ln.Close(); err != nil {
				t.Fatal(err)
			}
			return ln.Close
		}},
		{Name: "netconn.Conn.Read after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			_, err := c.Read(make([]byte, 8))
			return err
		})},
		{Name: "netconn.Conn.Write after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			_, err := c.Write([]byte("x"))
			return err
		})},
		{Name: "netconn.Conn.SetDeadline after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			return c.SetDeadline(time.Now())
		})},
		{Name: "netconn.Conn.SetNoDelay after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			return c.SetNoDelay(true)
		})},
		{Name: "netconn.Conn.CloseWrite after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			return c.CloseWrite()
		})},
		{Name: "netconn.Conn.SyscallConn Control after Close", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			rc, err := c.SyscallConn()
			if err != nil {
				return err
			}
			return rc.Control(func(uintptr) {})
		})},
		{Name: "netconn.Conn.Close twice", Want: net.ErrClosed, Setup: closedConn(func(c *Conn) error {
			return c.Close()
		})},
		{Name: "netconn.Conn.Write(empty) → 0, nil", OK: true, Setup: open(func(c *Conn) error {
			return badinput.ZeroN(c.Write(nil))
		})},
		{Name: "netconn.Conn.Read(empty) → 0, nil", OK: true, Setup: open(func(c *Conn) error {
			return badinput.ZeroN(c.Read(nil))
		})},
		{Name: "netconn.Conn deadline in the past", Want: os.ErrDeadlineExceeded, Setup: open(func(c *Conn) error {
			c.SetReadDeadline(time.Unix(1, 0))
			_, err := c.Read(make([]byte, 1))
			return err
		})},
	}
}

// biUDP returns a ListenPacket socket on udp4 loopback, or a unixgram one,
// closed when the test ends.
func biUDP(t *testing.T, network string) *PacketConn {
	t.Helper()
	address := "127.0.0.1:0"
	if network == "unixgram" {
		address = filepath.Join(biShortDir(t), "p")
	}
	pc, err := ListenPacket(network, address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.(*PacketConn)
}

// biShortDir returns a directory removed when the test ends, with a short
// path (t.TempDir's has the test's name): a socket path has 107 bytes at
// most.
func biShortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "bi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// biDialUDP returns a Dial("udp4") socket connected to a loopback port,
// closed when the test ends.
func biDialUDP(t *testing.T) *PacketConn {
	t.Helper()
	peer := biUDP(t, "udp4")
	c, err := Dial("udp4", peer.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*PacketConn)
}

// The datagram rows: ListenPacket and Dial of udp and unixgram with what
// cannot be bound or reached, writes to addresses the socket cannot send
// to, and calls after Close. Where net's *net.UDPConn or *net.UnixConn
// answers with a sentinel or errno, the face answers with the same, except
// where a row says otherwise.
func packetRows() []badinput.Row {
	longPath := "/tmp/" + strings.Repeat("q", 200)
	listen := func(network, address string, want error) func(*testing.T) func() error {
		return badinput.Call(func() error {
			pc, err := ListenPacket(network, address)
			if pc != nil {
				pc.Close()
			}
			return badinput.NetOp(err, "listen", network, want)
		})
	}
	dial := func(network, address string, want error) func(*testing.T) func() error {
		return badinput.Call(func() error {
			c, err := Dial(network, address)
			if c != nil {
				c.Close()
			}
			return badinput.NetOp(err, "dial", network, want)
		})
	}
	// udp: fn on a fresh socket of network; its error must be the
	// *net.OpError of a write (or read) as net's, matching want.
	udp := func(network, op string, want error, fn func(p *PacketConn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			p := biUDP(t, network)
			return func() error { return badinput.NetOp(fn(p), op, network, want) }
		}
	}
	write := func(want error, fn func(p *PacketConn) error) func(*testing.T) func() error {
		return udp("udp4", "write", want, fn)
	}
	// closed: fn after Close, on a ListenPacket socket or (dialed) a Dial one.
	closed := func(dialed bool, op string, fn func(p *PacketConn) error) func(*testing.T) func() error {
		return func(t *testing.T) func() error {
			var p *PacketConn
			if dialed {
				p = biDialUDP(t)
			} else {
				p = biUDP(t, "udp4")
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			return func() error { return badinput.NetOp(fn(p), op, "udp4", net.ErrClosed) }
		}
	}
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}
	x := []byte("x")
	return []badinput.Row{
		{Name: "netconn.ListenPacket(udp7) → OpError", Want: badinput.ErrNetOp, Setup: listen("udp7", "127.0.0.1:0", nil)},
		{Name: "netconn.ListenPacket(empty network) → OpError", Want: badinput.ErrNetOp, Setup: listen("", "127.0.0.1:0", nil)},
		{Name: "netconn.ListenPacket(port 99999) → OpError", Want: badinput.ErrNetOp, Setup: listen("udp4", "127.0.0.1:99999", nil)},
		{Name: "netconn.ListenPacket(unixgram, path too long) → EINVAL", Want: badinput.ErrNetOp, Setup: listen("unixgram", longPath, unix.EINVAL)},
		{Name: "netconn.ListenPacket(unixgram, missing directory) → ENOENT", Want: badinput.ErrNetOp,
			Setup: listen("unixgram", "/nonexistent/netconn-badinput.dgram", unix.ENOENT)},
		{Name: "netconn.ListenPacket(udp address in use) → EADDRINUSE", Want: badinput.ErrNetOp, Setup: func(t *testing.T) func() error {
			return listen("udp4", biUDP(t, "udp4").LocalAddr().String(), unix.EADDRINUSE)(t)
		}},
		{Name: "netconn.Config.ListenPacket(closed Group)", Want: reactor.ErrLoopClosed, Setup: func(t *testing.T) func() error {
			cfg := closedGroup(t)
			return func() error {
				_, err := cfg.ListenPacket("udp4", "127.0.0.1:0")
				return err
			}
		}},
		{Name: "netconn.Dial(udp, empty address)", Want: errMissingAddress, Setup: dial("udp", "", nil)},
		{Name: "netconn.Dial(udp4 to an IPv6 address) → OpError", Want: badinput.ErrNetOp, Setup: dial("udp4", "[::1]:9", nil)},
		{Name: "netconn.Dial(unixgram, no such socket) → ENOENT", Want: badinput.ErrNetOp, Setup: dial("unixgram", "/nonexistent/netconn-badinput.dgram", unix.ENOENT)},
		{Name: "netconn.Dial(unixgram, path too long) → EINVAL", Want: badinput.ErrNetOp, Setup: dial("unixgram", longPath, unix.EINVAL)},
		{Name: "netconn.Config.Dial(udp, closed Group)", Want: reactor.ErrLoopClosed, Setup: func(t *testing.T) func() error {
			cfg := closedGroup(t)
			return func() error {
				_, err := cfg.Dial("udp4", "127.0.0.1:9")
				return err
			}
		}},
		{Name: "netconn.PacketConn.WriteTo(nil addr) → EINVAL", Want: badinput.ErrNetOp, Setup: write(unix.EINVAL, func(p *PacketConn) error {
			return second(p.WriteTo(x, nil))
		})},
		{Name: "netconn.PacketConn.WriteTo((*net.UDPAddr)(nil)) → missing address", Want: badinput.ErrNetOp, Setup: write(errMissingAddress, func(p *PacketConn) error {
			return second(p.WriteTo(x, (*net.UDPAddr)(nil)))
		})},
		{Name: "netconn.PacketConn.WriteTo(*net.TCPAddr) → EINVAL", Want: badinput.ErrNetOp, Setup: write(unix.EINVAL, func(p *PacketConn) error {
			return second(p.WriteTo(x, &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}))
		})},
		{Name: "netconn.PacketConn.WriteTo(*net.UnixAddr on udp) → EINVAL", Want: badinput.ErrNetOp, Setup: write(unix.EINVAL, func(p *PacketConn) error {
			return second(p.WriteTo(x, &net.UnixAddr{Name: "/tmp/x", Net: "unixgram"}))
		})},
		// net's answer is a *net.AddrError ("non-IPv4 address"); the face's
		// is its own sentinel, which it does not export.
		{Name: "netconn.PacketConn.WriteTo(IPv6 address on udp4) → the wrong family", Want: badinput.ErrNetOp, Setup: write(sock.ErrAddrFamily, func(p *PacketConn) error {
			return second(p.WriteTo(x, &net.UDPAddr{IP: net.IPv6loopback, Port: 9}))
		})},
		{Name: "netconn.PacketConn.WriteTo(65,508 bytes) → EMSGSIZE", Want: badinput.ErrNetOp, Setup: write(unix.EMSGSIZE, func(p *PacketConn) error {
			return second(p.WriteTo(make([]byte, 65508), to))
		})},
		{Name: "netconn.PacketConn.WriteTo(empty) → 0, nil", OK: true, Setup: func(t *testing.T) func() error {
			p := biUDP(t, "udp4")
			return func() error { return badinput.ZeroN(p.WriteTo(nil, to)) }
		}},
		// net's Write on an unconnected socket reaches the kernel:
		// EDESTADDRREQ.
		{Name: "netconn.PacketConn.Write not connected → missing address", Want: badinput.ErrNetOp, Setup: write(errMissingAddress, func(p *PacketConn) error {
			return second(p.Write(x))
		})},
		{Name: "netconn.PacketConn.WriteMsgUDP(nil addr) not connected → missing address", Want: badinput.ErrNetOp,
			Setup: write(errMissingAddress, func(p *PacketConn) error {
				_, _, err := p.WriteMsgUDP(x, nil, nil)
				return err
			})},
		{Name: "netconn.PacketConn.WriteToUDPAddrPort(zero AddrPort) → missing address", Want: badinput.ErrNetOp,
			Setup: write(errMissingAddress, func(p *PacketConn) error {
				return second(p.WriteToUDPAddrPort(x, netip.AddrPort{}))
			})},
		{Name: "netconn.PacketConn.WriteMsgUDP(oob of zeros) → EINVAL", Want: badinput.ErrNetOp, Setup: write(unix.EINVAL, func(p *PacketConn) error {
			_, _, err := p.WriteMsgUDP(x, make([]byte, 64), to)
			return err
		})},
		{Name: "netconn.PacketConn.WriteMsgUDP(1 MiB of oob) → ENOBUFS", Want: badinput.ErrNetOp, Setup: write(unix.ENOBUFS, func(p *PacketConn) error {
			_, _, err := p.WriteMsgUDP(x, make([]byte, 1<<20), to)
			return err
		})},
		// net's answer is net.ErrWriteToConnected.
		{Name: "netconn.PacketConn.WriteTo(an address) connected → EISCONN", Want: badinput.ErrNetOp, Setup: func(t *testing.T) func() error {
			p := biDialUDP(t)
			return func() error { return badinput.NetOp(second(p.WriteTo(x, to)), "write", "udp4", unix.EISCONN) }
		}},
		{Name: "netconn.PacketConn.WriteMsgUDP(an address) connected → EISCONN", Want: badinput.ErrNetOp, Setup: func(t *testing.T) func() error {
			p := biDialUDP(t)
			return func() error {
				_, _, err := p.WriteMsgUDP(x, nil, to)
				return badinput.NetOp(err, "write", "udp4", unix.EISCONN)
			}
		}},
		// net's answer is EINVAL.
		{Name: "netconn.PacketConn.WriteTo(*net.UDPAddr on unixgram) → the wrong family", Want: badinput.ErrNetOp,
			Setup: udp("unixgram", "write", sock.ErrAddrFamily, func(p *PacketConn) error { return second(p.WriteTo(x, to)) })},
		{Name: "netconn.PacketConn.WriteTo(unixgram, path too long) → OpError", Want: badinput.ErrNetOp,
			Setup: udp("unixgram", "write", nil, func(p *PacketConn) error {
				return second(p.WriteTo(x, &net.UnixAddr{Name: longPath, Net: "unixgram"}))
			})},
		{Name: "netconn.PacketConn.WriteTo(unixgram, no such socket) → ENOENT", Want: badinput.ErrNetOp,
			Setup: udp("unixgram", "write", unix.ENOENT, func(p *PacketConn) error {
				return second(p.WriteTo(x, &net.UnixAddr{Name: "/nonexistent/netconn-badinput.dgram", Net: "unixgram"}))
			})},
		{Name: "netconn.PacketConn read deadline in the past", Want: os.ErrDeadlineExceeded, Setup: func(t *testing.T) func() error {
			p := biUDP(t, "udp4")
			return func() error {
				p.SetReadDeadline(time.Unix(1, 0))
				_, _, err := p.ReadFrom(make([]byte, 8))
				return err
			}
		}},
		{Name: "netconn.PacketConn write deadline in the past", Want: os.ErrDeadlineExceeded, Setup: func(t *testing.T) func() error {
			p := biUDP(t, "udp4")
			return func() error {
				p.SetWriteDeadline(time.Unix(1, 0))
				return second(p.WriteTo(x, to))
			}
		}},
		{Name: "netconn.PacketConn.ReadFrom after Close", Want: badinput.ErrNetOp, Setup: closed(false, "read", func(p *PacketConn) error {
			_, _, err := p.ReadFrom(make([]byte, 8))
			return err
		})},
		{Name: "netconn.PacketConn.ReadFromUDPAddrPort after Close", Want: badinput.ErrNetOp, Setup: closed(false, "read", func(p *PacketConn) error {
			_, _, err := p.ReadFromUDPAddrPort(make([]byte, 8))
			return err
		})},
		{Name: "netconn.PacketConn.ReadMsgUDP after Close", Want: badinput.ErrNetOp, Setup: closed(false, "read", func(p *PacketConn) error {
			_, _, _, _, err := p.ReadMsgUDP(make([]byte, 8), make([]byte, 64))
			return err
		})},
		{Name: "netconn.PacketConn.Read after Close (dialed)", Want: badinput.ErrNetOp, Setup: closed(true, "read", func(p *PacketConn) error {
			return second(p.Read(make([]byte, 8)))
		})},
		{Name: "netconn.PacketConn.WriteTo after Close", Want: badinput.ErrNetOp, Setup: closed(false, "write", func(p *PacketConn) error {
			return second(p.WriteTo(x, to))
		})},
		{Name: "netconn.PacketConn.WriteMsgUDP after Close", Want: badinput.ErrNetOp, Setup: closed(false, "write", func(p *PacketConn) error {
			_, _, err := p.WriteMsgUDP(x, nil, to)
			return err
		})},
		{Name: "netconn.PacketConn.Write after Close (dialed)", Want: badinput.ErrNetOp, Setup: closed(true, "write", func(p *PacketConn) error {
			return second(p.Write(x))
		})},
		{Name: "netconn.PacketConn.Close twice", Want: badinput.ErrNetOp, Setup: closed(false, "close", func(p *PacketConn) error { return p.Close() })},
		{Name: "netconn.PacketConn.SetDeadline after Close", Want: badinput.ErrNetOp, Setup: closed(false, "set", func(p *PacketConn) error {
			return p.SetDeadline(time.Now())
		})},
		{Name: "netconn.PacketConn.SetReadBuffer after Close", Want: badinput.ErrNetOp, Setup: closed(false, "set", func(p *PacketConn) error {
			return p.SetReadBuffer(1 << 20)
		})},
		{Name: "netconn.PacketConn.SyscallConn Control after Close", Want: badinput.ErrNetOp, Setup: closed(false, "raw-control", func(p *PacketConn) error {
			rc, err := p.SyscallConn()
			if err != nil {
				return err
			}
			return rc.Control(func(uintptr) {})
		})},
	}
}

func second(_ int, err error) error { return err }
