//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/loadgen"
	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// udpGen is the datagram load (-proto udp): clients UDP sockets, each
// connected to the server, driven by one goroutine on one locked thread
// over epoll, as internal/loadgen drives TCP: each client keeps window
// datagrams in flight and sends one more for each echo, many per system
// call (sendmmsg, recvmmsg); a datagram's first 8 bytes carry when it was
// sent, for its round trip. UDP may lose datagrams (a full receive buffer
// on either side): a client that has heard nothing for 200 ms while some
// are in flight counts them lost and sends its window again. With gso the
// window leaves in runs the kernel splits (UDP_SEGMENT), as quic-go sends.
// Every socket has a 4 MiB receive and send buffer.
type udpGen struct {
	p       poller.Poller
	clients []udpClient
	window  int
	size    int
	gso     bool
	start   time.Time
	events  []poller.Event
	batch   *sock.Batch
	msgs    []sock.Msg
	bufs    []byte
	oob     []byte
	count   int64
	lost    int64
	record  bool
	hist    loadgen.Histogram
}

type udpClient struct {
	fd       int
	inflight int
	heard    int64 // when it last received, ns since start
}

const udpBatch = 64

// dialUDPLoad opens clients sockets to addr and sends each one's window.
func dialUDPLoad(addr string, clients, window, size int, gso bool) (*udpGen, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	if size < 8 {
		return nil, fmt.Errorf("udp load: %d-byte datagrams: want at least 8 (the send time)", size)
	}
	p, err := poller.New(poller.Epoll)
	if err != nil {
		return nil, err
	}
	g := &udpGen{p: p, window: window, size: size, gso: gso, start: time.Now(), events: make([]poller.Event, 512),
		batch: sock.NewBatch(udpBatch), msgs: make([]sock.Msg, udpBatch),
		bufs: make([]byte, udpBatch*65536), oob: make([]byte, udpBatch*sock.ControlSpace)}
	for i := range clients {
		fd, _, err := sock.DatagramSocket("udp4", ap.String(), false, false)
		if err != nil {
			g.Close()
			return nil, err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		g.clients = append(g.clients, udpClient{fd: fd})
		if err := p.Add(fd, uint64(i), poller.Readable); err != nil {
			g.Close()
			return nil, err
		}
	}
	for i := range g.clients {
		if err := g.fill(i); err != nil {
			g.Close()
			return nil, err
		}
	}
	return g, nil
}

func (g *udpGen) now() int64 { return int64(time.Since(g.start)) }

// fill sends client i datagrams until its window is full.
func (g *udpGen) fill(i int) error {
	c := &g.clients[i]
	for c.inflight < g.window {
		k := min(g.window-c.inflight, udpBatch)
		now := g.now()
		if g.gso && k > 1 {
			// One send of k datagrams the kernel splits; a UDP_SEGMENT
			// send carries one UDP payload's worth at most.
			k = min(k, 65507/g.size)
			b := g.bufs[:k*g.size]
			for j := range k {
				binary.LittleEndian.PutUint64(b[j*g.size:], uint64(now))
			}
			m := &g.msgs[0]
			*m = sock.Msg{Buf: b, OOB: g.oob[:sock.PutSegment(g.oob, 0, g.size)]}
			if _, err := g.batch.Send(c.fd, g.msgs[:1]); err != nil {
				if err == unix.EAGAIN {
					return nil
				}
				return os.NewSyscallError("sendmsg", err)
			}
			c.inflight += k
			continue
		}
		for j := range k {
			b := g.bufs[j*g.size : (j+1)*g.size]
			binary.LittleEndian.PutUint64(b, uint64(now))
			g.msgs[j] = sock.Msg{Buf: b}
		}
		n, err := g.batch.Send(c.fd, g.msgs[:k])
		if err != nil {
			if err == unix.EAGAIN {
				return nil
			}
			return os.NewSyscallError("sendmmsg", err)
		}
		c.inflight += n
	}
	return nil
}

// receive takes client i's echoes.
func (g *udpGen) receive(i int) error {
	c := &g.clients[i]
	for {
		for j := range g.msgs {
			g.msgs[j] = sock.Msg{Buf: g.bufs[j*65536 : (j+1)*65536]}
		}
		n, err := g.batch.Recv(c.fd, g.msgs)
		if err == unix.EAGAIN {
			return nil
		}
		if err != nil {
			return os.NewSyscallError("recvmmsg", err)
		}
		now := g.now()
		c.heard = now
		for j := range n {
			m := &g.msgs[j]
			if m.N < 8 {
				continue
			}
			c.inflight--
			if g.record {
				g.count++
				g.hist.Add(time.Duration(now - int64(binary.LittleEndian.Uint64(m.Buf))))
			}
		}
		c.inflight = max(c.inflight, 0)
		if n < len(g.msgs) {
			return nil
		}
	}
}

// Run drives the load for d; with measure, it counts the echoes.
func (g *udpGen) Run(d time.Duration, measure bool) (loadgen.Result, error) {
	if measure {
		g.hist.Reset()
		g.count, g.lost = 0, 0
	}
	g.record = measure
	t0 := time.Now()
	end := g.now() + int64(d)
	lastCheck := g.now()
	for g.now() < end {
		n, err := g.p.Wait(g.events, time.Millisecond)
		if err != nil {
			return loadgen.Result{}, err
		}
		for _, ev := range g.events[:n] {
			i := int(ev.Token)
			if err := g.receive(i); err != nil {
				return loadgen.Result{}, err
			}
			if err := g.fill(i); err != nil {
				return loadgen.Result{}, err
			}
		}
		if now := g.now(); now-lastCheck > int64(50*time.Millisecond) {
			lastCheck = now
			for i := range g.clients {
				c := &g.clients[i]
				if c.inflight > 0 && now-c.heard > int64(200*time.Millisecond) {
					g.lost += int64(c.inflight)
					c.inflight, c.heard = 0, now
					if err := g.fill(i); err != nil {
						return loadgen.Result{}, err
					}
				}
			}
		}
	}
	r := loadgen.Result{Wall: time.Since(t0)}
	if measure {
		r.Msgs = g.count
		r.Latency = g.hist.Clone()
		r.P50, r.P99, r.P999, r.Max = g.hist.Quantile(0.5), g.hist.Quantile(0.99), g.hist.Quantile(0.999), g.hist.Max()
		r.Late = g.lost // reported as lost datagrams (see measure)
	}
	return r, nil
}

// Close closes the client sockets.
func (g *udpGen) Close() {
	for _, c := range g.clients {
		unix.Close(c.fd)
	}
	g.clients = nil
	g.p.Close()
}
