package main

import (
	"errors"
	"net"
	"os"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/poller"
)

// udpBuffer is every UDP socket's receive and send buffer in the
// datagram benchmarks: with linux's default 208 KiB, 1,200-byte datagrams
// from 64 clients overflow it.
const udpBuffer = 4 << 20

// serveReactorUDP echoes datagrams with the reactor's packet handler.
func serveReactorUDP(addr string, be poller.Backend, loops int, sig <-chan os.Signal) error {
	be, err := reactor.ResolveBackend(be)
	if err != nil {
		return err
	}
	s := &reactor.Server{Loops: loops, Backend: be, Uring: uringConfig()}
	la, err := s.ListenPacket("udp4", addr, reactor.PacketEcho, &reactor.PacketOptions{ReadBuffer: udpBuffer, WriteBuffer: udpBuffer})
	if err != nil {
		return err
	}
	return serveUntil(s, la, be, sig)
}

// serveNetUDP echoes datagrams on Go's net package, one goroutine reading
// and writing, as a Go UDP server is written.
func serveNetUDP(addr string, sig <-chan os.Signal) error {
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return err
	}
	c, err := net.ListenUDP("udp4", ua)
	if err != nil {
		return err
	}
	c.SetReadBuffer(udpBuffer)
	c.SetWriteBuffer(udpBuffer)
	go func() {
		<-sig
		c.Close()
	}()
	ready(c.LocalAddr())
	buf := make([]byte, 65536)
	for {
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		c.WriteToUDPAddrPort(buf[:n], from)
	}
}
