package main

import (
	"net"
	"os"
	"syscall"

	"github.com/lesismal/nbio"
	"github.com/panjf2000/gnet/v2"
	"github.com/tidwall/evio"
)

// The peers: other Go event-loop libraries, each configured as close to one
// event loop as it goes and echoing the way its own examples do. A signal
// ends the process at once (after the CPU profile is written): none of them
// is measured shutting down.

// serveGnet echoes with gnet v2: one event loop, SO_REUSEPORT on, so that
// the loop owns the listener and accepts on its own epoll (without it gnet
// adds a main reactor goroutine for accepting); OnTraffic writes back what
// c.Next(-1) returns. Everything else is gnet's default (level-triggered,
// TCP_NODELAY on, 64 KiB read buffer per loop).
func serveGnet(addr string, sig <-chan os.Signal) error {
	exitOn(sig)
	return gnet.Run(&gnetEcho{}, "tcp4://"+addr, gnet.WithNumEventLoop(1), gnet.WithReusePort(true))
}

type gnetEcho struct{ gnet.BuiltinEventEngine }

func (*gnetEcho) OnBoot(eng gnet.Engine) gnet.Action {
	fd, err := eng.Dup()
	if err != nil {
		fail(err)
	}
	defer syscall.Close(fd)
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		fail(os.NewSyscallError("getsockname", err))
	}
	in4 := sa.(*syscall.SockaddrInet4)
	ready(&net.TCPAddr{IP: net.IP(in4.Addr[:]), Port: in4.Port})
	return gnet.None
}

func (*gnetEcho) OnTraffic(c gnet.Conn) gnet.Action {
	buf, _ := c.Next(-1)
	c.Write(buf)
	return gnet.None
}

// serveEvio echoes with evio: NumLoops 1 (the loop accepts too) and Data
// returning its input, as evio's examples/echo-server does; without
// Options.ReuseInputBuffer evio copies each read before handing it over.
func serveEvio(addr string, sig <-chan os.Signal) error {
	exitOn(sig)
	var ev evio.Events
	ev.NumLoops = 1
	ev.Serving = func(s evio.Server) evio.Action {
		ready(s.Addrs[0])
		return evio.None
	}
	ev.Data = func(_ evio.Conn, in []byte) ([]byte, evio.Action) {
		return in, evio.None
	}
	return evio.Serve(ev, "tcp4://"+addr)
}

// serveNbio echoes with nbio: NPoller 1 (one I/O poller goroutine; nbio
// always gives each listener a goroutine of its own besides) and OnData
// writing back the data, called on the poller goroutine. Everything else is
// nbio's default (level-triggered, 64 KiB read buffer per poller).
func serveNbio(addr string, sig <-chan os.Signal) error {
	exitOn(sig)
	e := nbio.NewEngine(nbio.Config{Network: "tcp4", Addrs: []string{addr}, NPoller: 1})
	e.OnData(func(c *nbio.Conn, data []byte) { c.Write(data) })
	if err := e.Start(); err != nil {
		return err
	}
	a, err := net.ResolveTCPAddr("tcp4", e.Addrs[0])
	if err != nil {
		return err
	}
	ready(a)
	e.Wait()
	return nil
}

// exitOn ends the process when sig delivers, after writing the CPU profile.
func exitOn(sig <-chan os.Signal) {
	go func() {
		<-sig
		finish()
		os.Exit(0)
	}()
}
