package reactor

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/muxkit/reactor/internal/syscount"
	"github.com/muxkit/reactor/poller"
)

// pipelineDepth is how many requests a client of BenchmarkPipelined sends
// in one write before it reads the replies.
const pipelineDepth = 16

// pipelineMaxLine bounds a request line; a client that sends a longer one
// without its newline is closed.
const pipelineMaxLine = 4 << 10

// BenchmarkPipelined measures a pipelined request/response line protocol
// over loopback TCP to a one-loop Server. Each client writes pipelineDepth
// requests ("GET key07\r\n", 11 bytes) in one write, reads until it has
// all their replies ("$11 value:key07\r\n", 17 bytes), and repeats. Each op
// is one request, so a round is pipelineDepth ops; at conns=16 every
// connection has its own client goroutine and the ops are spread evenly
// over them.
//
// Both handlers reply to each request with its own c.Write, which queues:
// the round's 16 replies leave in one write(2) when OnData returns.
// handler=own splits lines itself, keeping a partial line in a buffer of
// its own (what a handler had to do before Conn.Keep); handler=keep uses
// Keep.
//
// The client is allocation-free in the timed loop (its buffers are made
// before the timer starts), so allocs/op is the server's. syscalls/req
// counts every system call of the process during the timed loop (see
// internal/syscount), client included, divided by requests: per round of
// 16 requests, the server's write, its read(s) and its poller wait, and
// the client's one write and its reads (Go's net.Conn: usually a read that
// would block, a park in the runtime's netpoller, the read that gets the
// replies), plus whatever the runtime does meanwhile (futex wake-ups,
// epoll_pwait of its netpoller). It is reported only where the kernel lets
// the process count.
func BenchmarkPipelined(b *testing.B) {
	backends := []poller.Backend{DefaultBackend}
	if DefaultBackend != poller.Poll {
		backends = append(backends, poller.Poll)
	}
	for _, be := range backends {
		for _, keep := range []bool{false, true} {
			for _, n := range []int{1, 16} {
				name := "own"
				if keep {
					name = "keep"
				}
				b.Run(fmt.Sprintf("backend=%v/handler=%s/conns=%d", be, name, n), func(b *testing.B) {
					benchPipelined(b, be, keep, n)
				})
			}
		}
	}
}

func benchPipelined(b *testing.B, be poller.Backend, keep bool, n int) {
	h := pipelineHandler()
	if keep {
		h = pipelineKeepHandler()
	}
	s := startServer(b, &Server{Handler: h, Loops: 1, Backend: be})
	addr := s.Addr().String()
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			b.Fatalf("dial %d of %d: %v", i+1, n, err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Minute)) // a guard against a hang, not a timing
		conns[i] = c
	}
	b.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	waitConns(b, s, n)
	req, want := pipelineBatch()

	// The clients start before the timer, so their goroutines, closures
	// and buffers are not counted.
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range conns {
		ops := b.N / n
		if i < b.N%n {
			ops++
		}
		got := make([]byte, len(want))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if err := pipelineRounds(c, req, want, got, ops); err != nil {
				b.Error(err)
			}
		}()
	}
	report := countSyscalls(b, "syscalls/req")
	b.ReportAllocs()
	b.ResetTimer()
	close(start)
	wg.Wait()
	b.StopTimer()
	report()
}

// countSyscalls starts counting the process's system calls (see
// internal/syscount) and returns a function that reports them per op as
// unit and stops counting; call it once the timed part is over. Where the
// kernel refuses the counters it logs why, and the report is empty.
func countSyscalls(b *testing.B, unit string) (report func()) {
	sc, err := syscount.Start()
	switch {
	case errors.Is(err, errors.ErrUnsupported):
		b.Logf("not counting system calls: %v", err)
		return func() {}
	case err != nil:
		b.Fatal(err)
	}
	before := sc.Count()
	return func() {
		b.ReportMetric(float64(sc.Count()-before)/float64(b.N), unit)
		sc.Close()
	}
}

// pipelineRounds sends ops requests over c, pipelineDepth at a time: one
// write of a prefix of req, then reads until the matching prefix of want
// is in got. It does not allocate.
func pipelineRounds(c net.Conn, req, want, got []byte, ops int) error {
	reqLen, replyLen := len(req)/pipelineDepth, len(want)/pipelineDepth
	for done := 0; done < ops; {
		k := min(pipelineDepth, ops-done)
		if _, err := c.Write(req[:k*reqLen]); err != nil {
			return err
		}
		if _, err := io.ReadFull(c, got[:k*replyLen]); err != nil {
			return fmt.Errorf("after %d requests: %w", done, err)
		}
		if !bytes.Equal(got[:k*replyLen], want[:k*replyLen]) {
			return fmt.Errorf("after %d requests: replies %q, want %q", done, got[:k*replyLen], want[:k*replyLen])
		}
		done += k
	}
	return nil
}

// pipelineBatch returns pipelineDepth requests and their replies, each
// concatenated; every request has the same length, and so every reply.
func pipelineBatch() (req, reply []byte) {
	for i := range pipelineDepth {
		key := fmt.Sprintf("key%02d", i)
		req = fmt.Appendf(req, "GET %s\r\n", key)
		reply = appendReply(reply, []byte(key))
	}
	return req, reply
}

// appendReply appends the reply to GET key: "$<len> value:<key>\r\n".
func appendReply(dst, key []byte) []byte {
	dst = append(dst, '$')
	dst = strconv.AppendInt(dst, int64(len("value:")+len(key)), 10)
	dst = append(dst, " value:"...)
	dst = append(dst, key...)
	return append(dst, "\r\n"...)
}

// errReply is pipelineHandler's reply to a line that is not a GET.
var errReply = []byte("-ERR\r\n")

// pipelineState is a connection's state in pipelineHandler, kept in its
// Context: the partial line left over from the last OnData, and the
// buffer replies are built in.
type pipelineState struct {
	left []byte
	out  []byte
}

// pipelineHandler serves the line protocol of BenchmarkPipelined: "GET
// <key>\r\n" gets "$<len> value:<key>\r\n", any other line "-ERR\r\n", each
// reply its own c.Write. It keeps a partial line at the end of the data in
// a buffer of its own, and allocates only to grow a connection's buffers.
func pipelineHandler() Handler {
	return HandlerFuncs{
		Open: func(c *Conn) { c.SetContext(&pipelineState{out: make([]byte, 0, 64)}) },
		Data: func(c *Conn, data []byte) {
			st := c.Context().(*pipelineState)
			if len(st.left) > 0 {
				// Complete the partial line with the head of data.
				i := bytes.IndexByte(data, '\n')
				if i < 0 {
					st.left = append(st.left, data...)
					if len(st.left) > pipelineMaxLine {
						c.Close()
					}
					return
				}
				st.left = append(st.left, data[:i+1]...)
				st.reply(c, st.left[:len(st.left)-1])
				st.left = st.left[:0]
				data = data[i+1:]
			}
			data = st.replyAll(c, data)
			if len(data) > pipelineMaxLine {
				c.Close()
				return
			}
			st.left = append(st.left[:0], data...)
		},
	}
}

// pipelineKeepHandler serves the protocol as pipelineHandler does, with
// Conn.Keep for the partial line and one reply buffer per loop.
func pipelineKeepHandler() Handler {
	return HandlerFuncs{Data: func(c *Conn, data []byte) {
		st, _ := c.Loop().Context().(*pipelineState)
		if st == nil {
			st = &pipelineState{out: make([]byte, 0, 64)}
			c.Loop().SetContext(st)
		}
		data = st.replyAll(c, data)
		if len(data) > pipelineMaxLine {
			c.Close()
			return
		}
		c.Keep(len(data))
	}}
}

// replyAll replies to every whole line of data and returns what follows
// the last one.
func (st *pipelineState) replyAll(c *Conn, data []byte) []byte {
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			return data
		}
		st.reply(c, data[:i])
		data = data[i+1:]
	}
}

// reply writes the reply to line, which has lost its '\n'.
func (st *pipelineState) reply(c *Conn, line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	key, ok := bytes.CutPrefix(line, []byte("GET "))
	if !ok || len(key) == 0 {
		c.Write(errReply)
		return
	}
	st.out = appendReply(st.out[:0], key)
	c.Write(st.out)
}

// TestPipelineHandler: both handlers of BenchmarkPipelined answer a batch
// of requests sent in pieces of every size from 1 byte to the whole batch,
// so lines split across reads take the leftover path.
func TestPipelineHandler(t *testing.T) {
	for _, h := range []Handler{pipelineHandler(), pipelineKeepHandler()} {
		testPipelineHandler(t, h)
	}
}

func testPipelineHandler(t *testing.T, h Handler) {
	addr := serve(t, &Server{Handler: h, Loops: 1})
	c := dial(t, addr)
	req, want := pipelineBatch()
	got := make([]byte, len(want))
	for size := 1; size <= len(req); size++ {
		for p := req; len(p) > 0; {
			k := min(size, len(p))
			if _, err := c.Write(p[:k]); err != nil {
				t.Fatalf("pieces of %d: write: %v", size, err)
			}
			p = p[k:]
		}
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatalf("pieces of %d: read: %v", size, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("pieces of %d: replies %q, want %q", size, got, want)
		}
	}
}
