package reactor_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/muxkit/reactor"
)

// dnsResponder answers every DNS query for an A record with 192.0.2.1 (and
// any other query with an empty answer), on the loop, without allocating
// per query: it parses the header and the question, and builds the reply
// in a buffer on its stack, which WriteTo copies.
type dnsResponder struct{}

func (dnsResponder) OnPacket(p *reactor.PacketConn, pkt *reactor.Packet) {
	q := pkt.Data
	if len(q) < 12 || q[2]&0x80 != 0 || binary.BigEndian.Uint16(q[4:]) != 1 {
		return // not one query with one question: drop it, as a server may
	}
	// The question: labels up to the root, then type and class.
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
	r[2] |= 0x80 // a response
	r[3] = 0     // no error
	binary.BigEndian.PutUint16(r[6:], 0)
	binary.BigEndian.PutUint16(r[8:], 0)
	binary.BigEndian.PutUint16(r[10:], 0)
	if qtype == 1 {
		binary.BigEndian.PutUint16(r[6:], 1)
		r = append(r, 0xc0, 12) // the name: a pointer to the question's
		r = binary.BigEndian.AppendUint16(r, 1)
		r = binary.BigEndian.AppendUint16(r, 1)
		r = binary.BigEndian.AppendUint32(r, 60)
		r = binary.BigEndian.AppendUint16(r, 4)
		r = append(r, 192, 0, 2, 1)
	}
	p.WriteTo(r, pkt.From)
}

func (dnsResponder) OnError(*reactor.PacketConn, error) {}
func (dnsResponder) OnClose(*reactor.PacketConn, error) {}

// The compile-time check that dnsResponder is a PacketHandler: a method
// misspelled would fail here, not be ignored.
var _ reactor.PacketHandler = dnsResponder{}

// Example_dnsResponder serves DNS queries on UDP with a Server's loops.
func Example_dnsResponder() {
	s := &reactor.Server{}
	addr, err := s.ListenPacket("udp4", "127.0.0.1:0", dnsResponder{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	go s.Serve()
	defer s.Shutdown(context.Background())

	// A client asks for example.org's A record.
	c, err := net.Dial("udp", addr.String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	q := []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0}
	for _, label := range strings.Split("example.org", ".") {
		q = append(q, byte(len(label)))
		q = append(q, label...)
	}
	q = append(q, 0, 0, 1, 0, 1)
	c.Write(q)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	r := make([]byte, 512)
	n, err := c.Read(r)
	if err != nil {
		log.Fatal(err)
	}
	r = r[:n]
	fmt.Printf("id %#04x, %d answer, address %v\n", binary.BigEndian.Uint16(r), binary.BigEndian.Uint16(r[6:]), net.IP(r[n-4:]))
	// Output: id 0x1234, 1 answer, address 192.0.2.1
}

// Example_statsdSink is a statsd-style sink on a Group's loop: it adds up
// "name:value|c" counters sent over UDP in a map no lock guards (the loop
// owns it); a "report" datagram has it hand the totals over.
func Example_statsdSink() {
	counts := map[string]int{}
	report := make(chan []string, 1)
	sink := reactor.PacketHandlerFuncs{Packet: func(p *reactor.PacketConn, pkt *reactor.Packet) {
		if string(pkt.Data) == "report" {
			var out []string
			for name, n := range counts {
				out = append(out, fmt.Sprintf("%s=%d", name, n))
			}
			slices.Sort(out)
			report <- out
			return
		}
		for _, line := range strings.Split(string(pkt.Data), "\n") {
			name, rest, ok := strings.Cut(line, ":")
			value, kind, ok2 := strings.Cut(rest, "|")
			n, err := strconv.Atoi(value)
			if ok && ok2 && kind == "c" && err == nil {
				counts[name] += n
			}
		}
	}}
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	ps, err := g.ListenPacket("udp4", "127.0.0.1:0", sink, nil)
	if err != nil {
		log.Fatal(err)
	}

	c, err := net.Dial("udp", ps[0].LocalAddr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("hits:1|c\nhits:2|c"))
	c.Write([]byte("errors:1|c"))
	c.Write([]byte("hits:4|c\nlatency:20|ms"))
	c.Write([]byte("report"))
	fmt.Println(<-report)
	// Output: [errors=1 hits=7]
}
