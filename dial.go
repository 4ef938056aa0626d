package reactor

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// A Dialer makes outbound connections driven by a Loop with a Handler,
// exactly as a Server's accepted ones are: the same Conn, callbacks,
// buffering, limits and graceful close. It is for a proxy's upstream side,
// a fan-out, a cluster client. Set the fields, then call Dial; a Dialer
// may be used by several loops at once and must not change while it is.
type Dialer struct {
	// Handler receives every connection's events; required. OnOpen is
	// called once the connection is established; if it cannot be, OnClose
	// alone is called, with a *net.OpError (Op "dial").
	Handler Handler
	// Timeout bounds the connect; past it the connection closes with a
	// *net.OpError whose Err is os.ErrDeadlineExceeded (a timeout). Zero
	// leaves it to the kernel (minutes for an unanswered TCP SYN).
	Timeout time.Duration
	// KeepAlive, IdleTimeout, Limits and MaxInbound mean what the Server
	// fields of those names do.
	KeepAlive   time.Duration
	IdleTimeout time.Duration
	Limits      Limits
	MaxInbound  int
}

// Dial starts connecting to address on loop l and returns the connection
// at once, before it is connected: SetContext may be called on it now, and
// what is written before OnOpen is sent once connected. network is tcp,
// tcp4, tcp6 or unix; a TCP address must be an IP address and port, since
// looking a host name up would block the loop (resolve it first, with
// net.DefaultResolver.LookupNetIP, off the loop). Call Dial on l's
// goroutine (a callback, or a function given to l.Post); it allocates the
// Conn and the Dialer's settings for it. A bad address, a bad field or a
// socket that cannot be made is an error at once, and no callback follows.
func (d *Dialer) Dial(l *Loop, network, address string) (*Conn, error) {
	l.checkLoop("Dialer.Dial")
	if d.Handler == nil {
		return nil, errors.New("reactor: Dialer.Handler is nil")
	}
	if d.Timeout < 0 || d.IdleTimeout < 0 || d.MaxInbound < 0 {
		return nil, fmt.Errorf("reactor: Dialer: negative Timeout (%v), IdleTimeout (%v) or MaxInbound (%d)", d.Timeout, d.IdleTimeout, d.MaxInbound)
	}
	if err := d.Limits.Validate(); err != nil {
		return nil, err
	}
	if l.exited || l.stopping {
		return nil, ErrLoopClosed
	}
	sa, raddr, err := dialAddr(network, address)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	family := unix.AF_UNIX
	switch sa.(type) {
	case *unix.SockaddrInet4:
		family = unix.AF_INET
	case *unix.SockaddrInet6:
		family = unix.AF_INET6
	}
	fd, err := sock.Socket(family)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: err}
	}
	if err := unix.Connect(fd, sa); err != nil && err != unix.EINPROGRESS && err != unix.EINTR {
		unix.Close(fd)
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: os.NewSyscallError("connect", err)}
	}
	svc := newService(d.Handler, d.Limits, d.IdleTimeout, d.MaxInbound, d.KeepAlive)
	// Writable interest, whether or not connect completed at once: OnOpen
	// always comes from the loop, never from inside Dial.
	c, err := l.newConn(fd, svc, poller.Writable)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Addr: raddr, Err: err}
	}
	c.st |= stConnecting
	c.dial = &dialing{network: network, raddr: raddr}
	l.stats.dialed.Add(1)
	if d.Timeout > 0 {
		c.idle = l.AfterFunc(d.Timeout, func() {
			c.closeNow(c.dialError(os.ErrDeadlineExceeded))
		})
	}
	return c, nil
}

// dialing is what a connecting Conn's errors name.
type dialing struct {
	network string
	raddr   net.Addr
}

// dialError is err as the *net.OpError a failed connect reports.
func (c *Conn) dialError(err error) error {
	return &net.OpError{Op: "dial", Net: c.dial.network, Addr: c.dial.raddr, Err: err}
}

// dialAddr parses a Dial address without a lookup.
func dialAddr(network, address string) (unix.Sockaddr, net.Addr, error) {
	switch network {
	case "unix":
		if address == "" {
			return nil, nil, errors.New("missing address")
		}
		return &unix.SockaddrUnix{Name: address}, &net.UnixAddr{Name: address, Net: "unix"}, nil
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, nil, fmt.Errorf("unsupported network %q (want tcp, tcp4, tcp6 or unix)", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, nil, fmt.Errorf("%q is not an IP address and port: resolve host names before Dial, off the loop (%v)", address, err)
	}
	ip := ap.Addr().Unmap()
	raddr := net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, ap.Port()))
	switch {
	case ip.Is4() && network != "tcp6":
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ip.As4()}, raddr, nil
	case ip.Is6() && network != "tcp4":
		return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ip.As16(), ZoneId: zoneID(ip.Zone())}, raddr, nil
	}
	return nil, nil, fmt.Errorf("address %s is not of network %s", address, network)
}

// zoneID is the interface index of an IPv6 zone, 0 if none or unknown.
func zoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// onConnect serves the event ending a connect: on success the connection
// becomes an ordinary one and OnOpen runs; on failure it closes with the
// connect's error.
func (c *Conn) onConnect() {
	fd := c.sock.Fd()
	soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	switch {
	case err != nil:
		c.closeNow(c.dialError(os.NewSyscallError("getsockopt", err)))
		return
	case soerr != 0:
		c.closeNow(c.dialError(os.NewSyscallError("connect", unix.Errno(soerr))))
		return
	}
	if _, err := unix.Getpeername(fd); err != nil {
		return // not connected yet: a spurious wake-up
	}
	_, tcp := c.dial.raddr.(*net.TCPAddr)
	c.st &^= stConnecting
	c.dial = nil
	if c.idle != nil {
		c.idle.Stop()
		c.idle = nil
	}
	if tcp {
		sock.SetTCPDefaults(fd, c.svc.keepAlive)
	}
	c.armIdle()
	c.svc.h.OnOpen(c)
	if !c.is(stClosed) {
		c.settle()
	}
}
