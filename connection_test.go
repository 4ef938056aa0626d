package reactor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// lines answers every line "x\n" in data with "<x>\n", one Write per line,
// and keeps an unfinished last line.
func lines(c *Conn, data []byte) {
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		c.Write(fmt.Appendf(nil, "<%s>\n", data[:i]))
		data = data[i+1:]
	}
	if err := c.Keep(len(data)); err != nil {
		panic(err)
	}
}

// readAll reads c to its end of file.
func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading to end of file: %v (after %d bytes)", err, len(got))
	}
	return got
}

// TestKeepReassemblesSplitFrames: a line protocol written with Keep answers
// every line, whether the lines arrive a byte at a time, split at random
// or many to a read, and lines longer than a read.
func TestKeepReassemblesSplitFrames(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		s := &Server{Backend: b, Loops: 2, Handler: HandlerFuncs{Data: lines}}
		addr := serve(t, s)
		rng := rand.New(rand.NewPCG(1, uint64(b)))
		var req, want []byte
		for i := range 300 {
			n := 1 + rng.IntN(50)
			if i%50 == 7 {
				n = 100 << 10 // longer than the loop's 64 KiB read
			}
			line := bytes.Repeat([]byte{byte('a' + i%26)}, n)
			req = append(append(req, line...), '\n')
			want = append(append(append(want, '<'), line...), ">\n"...)
		}
		c := dial(t, addr)
		go func() {
			rest := req
			for k := 0; len(rest) > 0; k++ {
				n := 1 // a byte at a time for the first 200 writes
				if k >= 200 {
					n = min(len(rest), 1+rng.IntN(9000))
				}
				if _, err := c.Write(rest[:n]); err != nil {
					return
				}
				rest = rest[n:]
			}
			c.(*net.TCPConn).CloseWrite()
		}()
		if got := readAll(t, c); !bytes.Equal(got, want) {
			t.Fatalf("got %d bytes of replies, want %d; first difference at %d", len(got), len(want), firstDiff(got, want))
		}
		faultWait(t, "the connection closed", func() bool { return s.Stats().Open == 0 })
		if q := s.Stats().Queued; q != 0 {
			t.Fatalf("Stats().Queued = %d after every connection closed", q)
		}
	})
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestKeepMisuse: Keep outside its connection's OnData, or of more bytes
// than the data had, is an error and keeps nothing.
func TestKeepMisuse(t *testing.T) {
	checkLeaks(t)
	errs := make(chan error, 8)
	var first *Conn
	s := &Server{Loops: 1, Handler: HandlerFuncs{
		Open: func(c *Conn) {
			errs <- c.Keep(0)
			if first == nil {
				first = c
			}
		},
		Data: func(c *Conn, data []byte) {
			errs <- c.Keep(-1)
			errs <- c.Keep(len(data) + 1)
			if first != c {
				errs <- first.Keep(0) // another connection's
			}
			if err := c.Keep(0); err != nil {
				errs <- err
			}
			c.Write([]byte(strconv.Itoa(c.Buffered())))
		},
	}}
	addr := serve(t, s)
	a := dial(t, addr)
	<-errs // a's OnOpen
	b := dial(t, addr)
	if err := <-errs; err == nil { // b's OnOpen
		t.Error("Keep in OnOpen succeeded")
	}
	if got := roundTrip(t, b, []byte("x")); string(got) != "0" {
		t.Errorf("Buffered() after failed Keeps = %s, want 0", got)
	}
	for i := range 3 {
		if err := <-errs; err == nil {
			t.Errorf("misuse %d of Keep succeeded", i)
		}
	}
	a.Close()
}

// TestMaxInbound: a handler that keeps more than MaxInbound gets its
// connection closed with ErrInboundFull, after its replies are flushed.
func TestMaxInbound(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		reasons := make(chan error, 1)
		s := &Server{Backend: b, Loops: 1, MaxInbound: 4096, Handler: HandlerFuncs{
			Data:  lines,
			Close: func(c *Conn, err error) { reasons <- err },
		}}
		addr := serve(t, s)
		c := dial(t, addr)
		if _, err := c.Write(append([]byte("a\n"), bytes.Repeat([]byte("x"), 5000)...)); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c) // a reset after the reply is no failure here
		if string(got) != "<a>\n" {
			t.Errorf("client read %q, want the reply <a> before the close", got)
		}
		if err := <-reasons; !errors.Is(err, ErrInboundFull) {
			t.Fatalf("OnClose reason %v, want ErrInboundFull", err)
		}
		if n := s.Stats().Closed.InboundFull; n != 1 {
			t.Fatalf("Stats().Closed.InboundFull = %d, want 1", n)
		}
	})
}

// TestFlowControlPipelined: a handler whose replies are far larger than
// its requests pauses reading when its queue passes a mark and resumes
// from OnDrain; every one of 2,000 pipelined requests is answered, in
// order, with the queue held near the mark and far below MaxQueued (which
// one 64 KiB read of requests would otherwise blow past).
func TestFlowControlPipelined(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		const n, replySize, mark = 2000, 4096, 32 << 10
		reply := bytes.Repeat([]byte("r"), replySize-8)
		var maxPending int
		s := &Server{Backend: b, Loops: 1,
			Limits: Limits{HighWater: 64 << 10, LowWater: 16 << 10, MaxQueued: 256 << 10},
			Handler: HandlerFuncs{
				Data: func(c *Conn, data []byte) {
					for {
						i := bytes.IndexByte(data, '\n')
						if i < 0 {
							break
						}
						seq, _ := strconv.Atoi(string(data[:i]))
						if _, err := c.Write(fmt.Appendf(nil, "%07d\n", seq)); err != nil {
							panic(err)
						}
						if _, err := c.Write(reply); err != nil {
							panic(err)
						}
						data = data[i+1:]
						maxPending = max(maxPending, c.Pending())
						if c.Pending() > mark {
							c.PauseRead()
							break
						}
					}
					c.Keep(len(data))
				},
				Drain: func(c *Conn) { c.ResumeRead() },
			}}
		addr := serve(t, s)
		c := dial(t, addr)
		var req []byte
		for i := range n {
			req = strconv.AppendInt(req, int64(i), 10)
			req = append(req, '\n')
		}
		go func() {
			c.Write(req)
			c.(*net.TCPConn).CloseWrite()
		}()
		got := readAll(t, c)
		if len(got) != n*replySize {
			t.Fatalf("read %d bytes, want %d (%d replies)", len(got), n*replySize, n)
		}
		for i := range n {
			if seq := string(got[i*replySize : i*replySize+7]); seq != fmt.Sprintf("%07d", i) {
				t.Fatalf("reply %d is for request %s", i, seq)
			}
		}
		var mp int
		onLoop(t, s.loops[0], func() { mp = maxPending })
		if mp > mark+replySize+512 {
			t.Fatalf("the write queue reached %d bytes, past the mark %d and one reply", mp, mark)
		}
	})
}

// peerCloser is a Handler with the three methods only: no HalfCloser.
type peerCloser struct{ reasons chan error }

func (peerCloser) OnOpen(*Conn) {}

func (peerCloser) OnData(c *Conn, data []byte) { c.Write(data) }

func (h peerCloser) OnClose(_ *Conn, err error) { h.reasons <- err }

// TestHalfClose: a HalfCloser hears the peer's end of file, and the
// connection stays open for what it still sends; a Handler without one,
// or HandlerFuncs without PeerClose, gets its connection closed with
// io.EOF once its queue is flushed.
func TestHalfClose(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		reasons := make(chan error, 1)
		for _, tc := range []struct {
			name   string
			h      Handler
			want   string
			reason error
		}{
			{"HalfCloser", HandlerFuncs{
				Data: func(c *Conn, data []byte) { c.Write(data) },
				PeerClose: func(c *Conn) {
					c.Loop().AfterFunc(20*time.Millisecond, func() {
						c.Write([]byte(" and bye"))
						c.Close()
					})
				},
				Close: func(c *Conn, err error) { reasons <- err },
			}, "hi and bye", nil},
			{"no HalfCloser", peerCloser{reasons}, "hi", io.EOF},
			{"HandlerFuncs without PeerClose", HandlerFuncs{
				Data:  func(c *Conn, data []byte) { c.Write(data) },
				Close: func(c *Conn, err error) { reasons <- err },
			}, "hi", io.EOF},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := &Server{Backend: b, Loops: 1, Handler: tc.h}
				c := dial(t, serve(t, s))
				c.Write([]byte("hi"))
				c.(*net.TCPConn).CloseWrite()
				if got := readAll(t, c); string(got) != tc.want {
					t.Errorf("client read %q, want %q", got, tc.want)
				}
				if err := <-reasons; err != tc.reason {
					t.Errorf("OnClose reason %v, want %v", err, tc.reason)
				}
			})
		}
	})
}

// TestHalfCloseDeferredWork: the lost replies. A handler answers
// one request per OnData and keeps the rest; when the peer has sent all
// 2,000 and shut its side, the HalfCloser has the kept requests offered
// again (ResumeRead) until none is left, then closes: every reply arrives.
func TestHalfCloseDeferredWork(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		const n = 2000
		peerDone := map[*Conn]bool{}
		s := &Server{Backend: b, Loops: 1, Handler: HandlerFuncs{
			Data: func(c *Conn, data []byte) {
				if i := bytes.IndexByte(data, '\n'); i >= 0 {
					c.Write(data[:i+1])
					data = data[i+1:]
				}
				c.Keep(len(data))
				switch {
				case len(data) > 0 && peerDone[c]:
					c.ResumeRead() // more next turn
				case len(data) == 0 && peerDone[c]:
					c.Close()
				}
			},
			PeerClose: func(c *Conn) {
				peerDone[c] = true
				if c.Buffered() == 0 {
					c.Close()
					return
				}
				c.ResumeRead()
			},
		}}
		c := dial(t, serve(t, s))
		var req []byte
		for i := range n {
			req = fmt.Appendf(req, "%d\n", i)
		}
		go func() {
			c.Write(req)
			c.(*net.TCPConn).CloseWrite()
		}()
		if got := readAll(t, c); !bytes.Equal(got, req) {
			t.Fatalf("got %d of %d replies", bytes.Count(got, []byte("\n")), n)
		}
	})
}

// TestConnOptions: accepted TCP connections start with TCP_NODELAY and
// keep-alive on; the Set methods change them; after Close they fail with
// net.ErrClosed. KeepAlive < 0 leaves keep-alive off.
func TestConnOptions(t *testing.T) {
	forEachBackend(t, testConnOptions)
}

func testConnOptions(t *testing.T, be poller.Backend) {
	for _, keepAlive := range []time.Duration{0, -1} {
		t.Run(fmt.Sprint("KeepAlive=", keepAlive), func(t *testing.T) {
			checkLeaks(t)
			results := make(chan string, 1)
			s := &Server{Backend: be, Loops: 1, KeepAlive: keepAlive, Handler: HandlerFuncs{Data: func(c *Conn, _ []byte) {
				var out []string
				report := func(what string, opt int) {
					v, err := sockoptInt(c, opt)
					out = append(out, fmt.Sprintf("%s=%d,%v", what, v, err))
				}
				report("nodelay", optNoDelay)
				report("keepalive", optKeepAlive)
				for _, err := range []error{c.SetNoDelay(false), c.SetKeepAlive(true), c.SetKeepAlivePeriod(30 * time.Second),
					c.SetLinger(5), c.SetReadBuffer(32 << 10), c.SetWriteBuffer(32 << 10)} {
					if err != nil {
						out = append(out, err.Error())
					}
				}
				report("nodelay", optNoDelay)
				report("keepalive", optKeepAlive)
				c.Close()
				out = append(out, fmt.Sprint(errors.Is(c.SetNoDelay(true), net.ErrClosed), errors.Is(c.Control(func(uintptr) {}), net.ErrClosed)))
				results <- fmt.Sprint(out)
			}}}
			c := dial(t, serve(t, s))
			c.Write([]byte("x"))
			ka := 1
			if keepAlive < 0 {
				ka = 0
			}
			want := fmt.Sprint([]string{"nodelay=1,<nil>", fmt.Sprintf("keepalive=%d,<nil>", ka), "nodelay=0,<nil>", "keepalive=1,<nil>", "true true"})
			if got := <-results; got != want {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// Socket options TestConnOptions reads.
const (
	optNoDelay = iota
	optKeepAlive
)

// sockoptInt reads one of c's socket options through Control.
func sockoptInt(c *Conn, opt int) (v int, err error) {
	level, name := unix.IPPROTO_TCP, unix.TCP_NODELAY
	if opt == optKeepAlive {
		level, name = unix.SOL_SOCKET, unix.SO_KEEPALIVE
	}
	if cerr := c.Control(func(fd uintptr) { v, err = unix.GetsockoptInt(int(fd), level, name) }); cerr != nil {
		return 0, cerr
	}
	if v != 0 {
		v = 1 // BSDs report the option's bit, not 1
	}
	return v, err
}

// frames answers every length-prefixed frame (an 8-byte length, then the
// body) with its length and a checksum of its body, keeping an unfinished
// frame with Keep and, when need is set, naming its length with Need.
func frames(need bool, seen *atomic.Int64) HandlerFuncs {
	return HandlerFuncs{Data: func(c *Conn, data []byte) {
		seen.Add(1)
		for len(data) >= 8 {
			n := int(binary.BigEndian.Uint64(data))
			if len(data) < 8+n {
				break
			}
			var sum byte
			for _, b := range data[8 : 8+n] {
				sum += b
			}
			c.Write(fmt.Appendf(nil, "%d %d\n", n, sum))
			data = data[8+n:]
		}
		if err := c.Keep(len(data)); err != nil {
			panic(err)
		}
		if need && len(data) >= 8 {
			if err := c.Need(8 + int(binary.BigEndian.Uint64(data))); err != nil {
				panic(err)
			}
		}
	}}
}

// sendFrame writes a frame of n bytes in pieces of piece bytes and returns
// the answer the frames handler gives it.
func sendFrame(t *testing.T, c net.Conn, n, piece int) string {
	t.Helper()
	body := bytes.Repeat([]byte{7}, n)
	var sum byte
	for _, b := range body {
		sum += b
	}
	frame := binary.BigEndian.AppendUint64(nil, uint64(n))
	frame = append(frame, body...)
	go func() {
		for len(frame) > 0 {
			k := min(piece, len(frame))
			if _, err := c.Write(frame[:k]); err != nil {
				return
			}
			frame = frame[k:]
		}
	}()
	want := fmt.Sprintf("%d %d\n", n, sum)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("frame of %d bytes: %v", n, err)
	}
	if string(got) != want {
		t.Fatalf("frame of %d bytes: answer %q, want %q", n, got, want)
	}
	return want
}

// TestKeepLargeFrame: a frame of 4 MiB arriving in 64 KiB pieces is
// reassembled with Keep alone, and with Need, whose OnData then sees it
// once instead of once per read.
func TestKeepLargeFrame(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		for _, need := range []bool{false, true} {
			var seen atomic.Int64
			s := &Server{Backend: b, Loops: 1, Handler: frames(need, &seen), MaxInbound: 8 << 20}
			addr := serve(t, s)
			c := dial(t, addr)
			sendFrame(t, c, 4<<20, 64<<10)
			if need && seen.Load() > 3 {
				t.Errorf("with Need, OnData ran %d times for one frame, want at most 3", seen.Load())
			}
			if !need && seen.Load() < 10 {
				t.Errorf("without Need, OnData ran %d times: the frame came in one read, the test shows nothing", seen.Load())
			}
		}
	})
}

// TestNeedLimits: Need past MaxInbound is an error and changes nothing;
// outside OnData it is an error; the peer's end of file ends the wait,
// and OnData gets what came.
func TestNeedLimits(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		var mu sync.Mutex
		var errs []error
		var last []byte
		h := HandlerFuncs{
			Data: func(c *Conn, data []byte) {
				mu.Lock()
				defer mu.Unlock()
				last = append(last[:0], data...)
				errs = append(errs, c.Need(1<<20+1))
				c.Keep(len(data))
				c.Need(1 << 20)
			},
			PeerClose: func(c *Conn) {
				mu.Lock()
				defer mu.Unlock()
				errs = append(errs, c.Need(10))
				c.Write([]byte(fmt.Sprint(len(last))))
				c.Close()
			},
		}
		s := &Server{Backend: b, Loops: 1, Handler: h, MaxInbound: 1 << 20}
		c := dial(t, serve(t, s))
		c.Write([]byte("start of a frame that never ends"))
		c.(*net.TCPConn).CloseWrite()
		got, _ := io.ReadAll(c)
		mu.Lock()
		defer mu.Unlock()
		if string(got) != "32" {
			t.Errorf("at the end of file OnData had %q bytes, want the 32 sent", got)
		}
		// OnData ran twice (the read, then the end of file ending the
		// wait), and OnPeerClose once: three calls, every one an error.
		if len(errs) != 3 || slices.Contains(errs, nil) {
			t.Errorf("Need past MaxInbound twice, then outside OnData: %v, want three errors", errs)
		}
	})
}

// TestPendingCountsThisCallback: Pending, called in a callback, counts the
// bytes that callback wrote: they stay queued until it returns.
func TestPendingCountsThisCallback(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		got := make(chan int, 1)
		h := HandlerFuncs{Data: func(c *Conn, data []byte) {
			c.Write(data)
			c.Write(data)
			got <- c.Pending()
		}}
		c := dial(t, serve(t, &Server{Backend: b, Handler: h}))
		c.Write([]byte("12345"))
		if n := <-got; n != 10 {
			t.Errorf("Pending after two Writes of 5 bytes in one callback: %d, want 10", n)
		}
	})
}

// TestPausedEOFWaitsForKept: while reading is paused, the peer's end of
// file is not read, so it cannot overtake bytes already kept: ResumeRead
// offers them first, and the requests sent before the end of file are
// all answered before the connection closes.
func TestPausedEOFWaitsForKept(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		h := HandlerFuncs{Data: func(c *Conn, data []byte) {
			// Answer one line per OnData, keep the rest, and pause for
			// a while after each answer.
			i := bytes.IndexByte(data, '\n')
			if i < 0 {
				c.Keep(len(data))
				return
			}
			c.Write(append([]byte("<"), data[:i+1]...))
			c.Keep(len(data) - i - 1)
			c.PauseRead()
			c.Loop().AfterFunc(20*time.Millisecond, c.ResumeRead)
		}}
		c := dial(t, serve(t, &Server{Backend: b, Handler: h}))
		c.Write([]byte("a\nb\nc\n"))
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || string(got) != "<a\n<b\n<c\n" {
			t.Errorf("answers %q, %v; want all three before the close", got, err)
		}
	})
}

// TestResumeReadOffersAgain: each ResumeRead offers the bytes still kept
// once more, paused or not, and after the peer's end of file as well.
func TestResumeReadOffersAgain(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		offers := 0                  // on the loop goroutine only
		eof := false                 // likewise
		third := make(chan struct{}) // closed at the third offer
		h := HandlerFuncs{
			Data: func(c *Conn, data []byte) {
				offers++
				c.Keep(len(data)) // never consumes
				switch {
				case eof: // the offer after the end of file: report the count
					c.Write([]byte(fmt.Sprint(offers)))
					c.Close() // no OnData follows: the count is final
				case offers < 3:
					c.ResumeRead() // not paused: offered again all the same
				case offers == 3:
					close(third)
				}
			},
			PeerClose: func(c *Conn) {
				eof = true
				c.ResumeRead() // once more, after the end of file
			},
		}
		c := dial(t, serve(t, &Server{Backend: b, Handler: h}))
		c.Write([]byte("x"))
		select {
		case <-third:
		case <-time.After(10 * time.Second):
			t.Fatal("no third offer within 10s")
		}
		c.(*net.TCPConn).CloseWrite()
		got, _ := io.ReadAll(c)
		if string(got) != "4" {
			t.Errorf("OnData ran %s times, want 4 (the read, two ResumeReads, one after the end of file)", got)
		}
	})
}

// TestResumeReadUnderBackpressure: a ResumeRead made while the write queue
// holds reading (above the high watermark) offers the kept bytes once the
// queue drains, here after the peer's end of file, when no read will bring
// them. FuzzLoop found the offer lost on the completion engine, whose
// sends complete after the turn.
func TestResumeReadUnderBackpressure(t *testing.T) {
	// Far more than the two sockets' buffers take, fixed small at both
	// ends: autotuned, a sender's buffer and a reader's that keeps up can
	// take a whole 8 MiB Write (seen once in CI on select: Pending() 0).
	const big = 8 << 20
	const sockBuf = 64 << 10
	lim := Limits{HighWater: 64 << 10, LowWater: 16 << 10, MaxQueued: 2 * big}
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		eof := false // on the loop goroutine only
		queued := 0  // Pending() after PeerClose's Write, likewise
		offers := 0  // OnData calls, likewise
		report := make(chan [2]int, 1)
		h := HandlerFuncs{
			Data: func(c *Conn, data []byte) {
				offers++
				c.Keep(len(data))
				if eof {
					c.Write([]byte("end"))
					c.Close()
					report <- [2]int{queued, offers}
				}
			},
			PeerClose: func(c *Conn) {
				eof = true
				if err := c.SetWriteBuffer(sockBuf); err != nil {
					t.Errorf("SetWriteBuffer: %v", err)
				}
				c.Write(make([]byte, big))
				queued = c.Pending()
				c.ResumeRead()
			},
		}
		c := dial(t, serve(t, &Server{Backend: b, Loops: 1, Limits: lim, Handler: h}))
		if err := c.(*net.TCPConn).SetReadBuffer(sockBuf); err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte("x"))
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		if err != nil || len(got) != big+3 || string(got[big:]) != "end" {
			t.Fatalf("read %d bytes, %v; want %d ending in \"end\" (the kept byte offered again)", len(got), err, big+3)
		}
		r := <-report
		if r[0] < lim.HighWater {
			t.Errorf("Pending() = %d after the big Write, under the high watermark %d: backpressure was not tested", r[0], lim.HighWater)
		}
		if r[1] != 2 {
			t.Errorf("OnData ran %d times, want 2 (the read, the ResumeRead)", r[1])
		}
	})
}

// TestNoDataAfterClose: once a handler has called Close, OnData is not
// called again for the connection, whatever the peer still sends.
func TestNoDataAfterClose(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		var after atomic.Int64
		closed := make(chan struct{})
		h := HandlerFuncs{
			Data: func(c *Conn, data []byte) {
				if c.is(stClosing | stClosed) {
					after.Add(1)
				}
				c.Close()
			},
			Close: func(*Conn, error) { close(closed) },
		}
		c := dial(t, serve(t, &Server{Backend: b, Handler: h}))
		for range 20 {
			c.Write([]byte("more"))
		}
		<-closed
		if n := after.Load(); n != 0 {
			t.Errorf("OnData ran %d times after Close", n)
		}
	})
}

// TestBigWriteFailure: a Write of 64 KiB or more is sent at once; on a
// connection whose peer has reset, it fails there and then on a readiness
// loop (Write returns the system call's error) and when its send completes
// on the completion engine (Write has queued it); either way the
// connection closes with that error.
func TestBigWriteFailure(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		paused := make(chan *Conn, 1)
		closed := make(chan error, 1)
		h := HandlerFuncs{
			Data: func(c *Conn, data []byte) {
				c.PauseRead() // so the reset is not read before the Write
				paused <- c
			},
			Close: func(c *Conn, err error) { closed <- err },
		}
		s := &Server{Backend: b, Loops: 1, Handler: h}
		cl := dial(t, serve(t, s))
		cl.Write([]byte("go"))
		c := <-paused
		cl.(*net.TCPConn).SetLinger(0)
		cl.Close() // a reset
		var werr error
		onLoop(t, c.Loop(), func() {
			// The reset may take a moment to land: write until the
			// socket says so, or the connection closed.
			for i := 0; i < 1000 && !c.is(stClosed); i++ {
				if _, werr = c.Write(make([]byte, 64<<10)); werr != nil {
					return
				}
			}
		})
		cerr := <-closed
		if cerr == nil || errors.Is(cerr, io.EOF) {
			t.Fatalf("OnClose(%v), want the reset's error", cerr)
		}
		switch {
		case werr == nil:
		case errors.Is(werr, cerr), errors.Is(werr, net.ErrClosed):
		case b == Uring && errors.Is(werr, ErrQueueFull):
			// The engine queued each Write; their sends fail later.
		default:
			t.Errorf("the failed Write returned %v; OnClose had %v", werr, cerr)
		}
		if b != Uring && werr == nil {
			t.Errorf("on a readiness loop no Write failed; OnClose had %v", cerr)
		}
	})
}
