package reactor

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"testing"
	"unsafe"

	"github.com/muxkit/reactor/poller"
)

// BenchmarkLargeFrame measures one frame of 1, 4, 16 and 64 MiB (an 8-byte
// length, then the payload) arriving over loopback TCP in 64 KiB writes to
// a one-loop Server, per backend, three ways a handler gathers it:
//
//   - keep: Keep(len(data)) on every OnData until the frame is whole, the
//     way a parser that rereads its header works;
//   - need: Keep and Need(frame length) once, after the header;
//   - buffer: no Keep; the handler appends each OnData's bytes to a
//     bytes.Buffer of its own, as a handler did before Keep.
//
// Each op is one frame and the one-byte reply the handler sends when it
// has it all. copied/B is the bytes the loop copied into the kept buffer
// per frame byte, as the handler sees it: the new bytes of each OnData,
// plus the bytes kept before whenever the buffer moved (for buffer, what
// bytes.Buffer copied, counted the same way). The read from the kernel is
// not counted.
//
//	go test -run '^$' -bench LargeFrame -benchmem .
func BenchmarkLargeFrame(b *testing.B) {
	for _, be := range testBackends(b) {
		for _, mode := range []string{"keep", "need", "buffer"} {
			for _, mib := range []int{1, 4, 16, 64} {
				b.Run(fmt.Sprintf("backend=%v/%s/MiB=%d", be, mode, mib), func(b *testing.B) {
					benchLargeFrame(b, be, mode, mib<<20)
				})
			}
		}
	}
}

// frameGatherer is BenchmarkLargeFrame's handler: it gathers one frame at
// a time as its mode says, replies one byte when it has it, and counts the
// bytes copied on the way.
type frameGatherer struct {
	mode   string
	buf    bytes.Buffer // mode buffer: the frame so far
	kept   int          // bytes kept at the last OnData
	at     *byte        // where those bytes were
	copied int64
	err    error
}

func (h *frameGatherer) OnOpen(*Conn)             {}
func (h *frameGatherer) OnClose(*Conn, error)     {}
func (h *frameGatherer) fail(c *Conn, err error)  { h.err = err; c.Close() }
func (h *frameGatherer) OnData(c *Conn, d []byte) { h.gather(c, d) }

func (h *frameGatherer) gather(c *Conn, data []byte) {
	if h.mode == "buffer" {
		before := h.buf.Cap()
		at := h.buf.Bytes()
		h.buf.Write(data)
		h.copied += int64(len(data))
		if h.buf.Cap() != before && len(at) > 0 {
			h.copied += int64(len(at)) // bytes.Buffer moved to a larger slice
		}
		data = h.buf.Bytes()
	} else {
		h.copied += int64(len(data) - h.kept)
		if h.kept > 0 && &data[0] != h.at {
			h.copied += int64(h.kept) // the kept bytes moved
		}
	}
	if len(data) < 8 {
		h.keep(c, data)
		return
	}
	total := 8 + int(binary.BigEndian.Uint64(data))
	if len(data) < total {
		if h.mode == "need" {
			if err := c.Need(total); err != nil {
				h.fail(c, err)
				return
			}
		}
		h.keep(c, data)
		return
	}
	if len(data) != total {
		h.fail(c, fmt.Errorf("got %d bytes, the frame is %d: the client sends one at a time", len(data), total))
		return
	}
	h.kept, h.at = 0, nil
	h.buf.Reset()
	c.Write([]byte{1})
}

// keep keeps all of data for the next OnData (the buffer mode keeps its
// own copy instead).
func (h *frameGatherer) keep(c *Conn, data []byte) {
	if h.mode == "buffer" {
		return
	}
	if err := c.Keep(len(data)); err != nil {
		h.fail(c, err)
		return
	}
	h.kept, h.at = len(data), unsafe.SliceData(data)
}

func benchLargeFrame(b *testing.B, be poller.Backend, mode string, size int) {
	h := &frameGatherer{mode: mode}
	s := startServer(b, &Server{Handler: h, Loops: 1, Backend: be, MaxInbound: size + 8})
	c, err := net.Dial("tcp", s.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	frame := make([]byte, 8+size)
	binary.BigEndian.PutUint64(frame, uint64(size))
	for i := 8; i < len(frame); i++ {
		frame[i] = byte(i)
	}
	send := func() {
		for off := 0; off < len(frame); off += 64 << 10 {
			if _, err := c.Write(frame[off:min(off+64<<10, len(frame))]); err != nil {
				b.Fatal(err)
			}
		}
		var ack [1]byte
		if _, err := io.ReadFull(c, ack[:]); err != nil {
			b.Fatalf("reading the reply: %v (handler: %v)", err, h.err)
		}
	}
	send() // warm the pools and the connection
	h.copied = 0
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		send()
	}
	b.StopTimer()
	b.ReportMetric(float64(h.copied)/float64(b.N)/float64(len(frame)), "copied/B")
}
