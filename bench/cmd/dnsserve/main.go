// Command dnsserve is a DNS server for dnsperf, written three ways so the
// same load measures each: github.com/miekg/dns served over Go's
// net.ListenPacket (-impl miekg-net), the same miekg/dns server over the
// reactor's face, netconn.ListenPacket (-impl miekg-face), and a responder
// on the reactor's packet handler (-impl packet). Every one answers an A
// query for any name with 127.0.0.1 and any other query with no answer.
//
//	dnsserve -impl miekg-face -backend epoll -addr 127.0.0.1:5353
//
// It prints "listening on ADDR" once it serves, and stops on SIGINT or
// SIGTERM. bench/dns.sh runs dnsperf against each.
package main

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/miekg/dns"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/netconn"
	"github.com/muxkit/reactor/poller"
)

// udpBuffer is every server socket's receive and send buffer: dnsperf
// keeps 100 queries in flight per client.
const udpBuffer = 4 << 20

func main() {
	impl := flag.String("impl", "packet", "miekg-net, miekg-face or packet")
	addr := flag.String("addr", "127.0.0.1:5353", "udp address to serve")
	backend := flag.String("backend", "", "the reactor's backend for miekg-face and packet (default: the best here)")
	loops := flag.Int("loops", 1, "reactor loops for miekg-face and packet")
	flag.Parse()
	be := poller.Available()[0]
	if *backend != "" {
		var err error
		if be, err = poller.ParseBackend(*backend); err != nil {
			fail(err)
		}
	}
	var err error
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	switch *impl {
	case "miekg-net":
		pc, err := net.ListenPacket("udp4", *addr)
		if err != nil {
			fail(err)
		}
		err = serveMiekg(pc, sig)
	case "miekg-face":
		g, gerr := reactor.NewGroup(reactor.GroupConfig{Loops: *loops, Backend: be})
		if gerr != nil {
			fail(gerr)
		}
		defer g.Close()
		pc, lerr := netconn.Config{Group: g}.ListenPacket("udp4", *addr)
		if lerr != nil {
			fail(lerr)
		}
		err = serveMiekg(pc, sig)
	case "packet":
		err = servePacket(*addr, be, *loops, sig)
	default:
		fmt.Fprintf(os.Stderr, "dnsserve: -impl %q: want miekg-net, miekg-face or packet\n", *impl)
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "dnsserve:", err)
	os.Exit(1)
}

// serveMiekg serves pc with a miekg/dns server until sig.
func serveMiekg(pc net.PacketConn, sig <-chan os.Signal) error {
	type buffered interface {
		SetReadBuffer(int) error
		SetWriteBuffer(int) error
	}
	if b, ok := pc.(buffered); ok {
		b.SetReadBuffer(udpBuffer)
		b.SetWriteBuffer(udpBuffer)
	}
	a := net.IPv4(127, 0, 0, 1).To4()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		if len(q.Question) == 1 && q.Question[0].Qtype == dns.TypeA {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   a,
			})
		}
		w.WriteMsg(m)
	})
	srv := &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: func() {
		fmt.Printf("listening on %s\n", pc.LocalAddr())
	}}
	served := make(chan error, 1)
	go func() { served <- srv.ActivateAndServe() }()
	select {
	case err := <-served:
		return err
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.ShutdownContext(ctx)
}

// servePacket answers on the reactor's packet handler until sig.
func servePacket(addr string, be poller.Backend, loops int, sig <-chan os.Signal) error {
	s := &reactor.Server{Loops: loops, Backend: be}
	la, err := s.ListenPacket("udp4", addr, reactor.PacketHandlerFuncs{Packet: answer},
		&reactor.PacketOptions{ReadBuffer: udpBuffer, WriteBuffer: udpBuffer})
	if err != nil {
		return err
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	fmt.Printf("listening on %s\n", la)
	select {
	case err := <-served:
		return err
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return s.Shutdown(ctx)
}

// answer replies to one query on the loop, without allocating: it finds
// the end of the question, copies header and question into a reply built
// on the stack, and appends an A record pointing at the question's name.
func answer(p *reactor.PacketConn, pkt *reactor.Packet) {
	q := pkt.Data
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return
	}
	end := 12
	for end < len(q) && q[end] != 0 {
		end += int(q[end]) + 1
	}
	end += 5
	if end > len(q) {
		return
	}
	qtype := binary.BigEndian.Uint16(q[end-4:])
	var buf [512]byte
	r := append(buf[:0], q[:end]...)
	r[2] = r[2]&0x79 | 0x80 // a response; opcode and RD kept
	r[3] = 0
	binary.BigEndian.PutUint16(r[6:], 0)
	binary.BigEndian.PutUint16(r[8:], 0)
	binary.BigEndian.PutUint16(r[10:], 0)
	if qtype == 1 {
		binary.BigEndian.PutUint16(r[6:], 1)
		r = append(r, 0xc0, 12)
		r = binary.BigEndian.AppendUint16(r, 1)
		r = binary.BigEndian.AppendUint16(r, 1)
		r = binary.BigEndian.AppendUint32(r, 60)
		r = binary.BigEndian.AppendUint16(r, 4)
		r = append(r, 127, 0, 0, 1)
	}
	p.WriteTo(r, pkt.From)
}
