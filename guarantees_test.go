package reactor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muxkit/reactor/poller"
)

// The guarantees the protocol API's docs state, one test each, on every
// backend.

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
		var offers atomic.Int64
		h := HandlerFuncs{
			Data: func(c *Conn, data []byte) {
				n := offers.Add(1)
				c.Keep(len(data)) // never consumes
				if n < 3 {
					c.ResumeRead() // not paused: offered again all the same
				}
			},
			PeerClose: func(c *Conn) {
				c.ResumeRead() // once more, after the end of file
				c.Loop().AfterFunc(time.Millisecond, func() {
					c.Write([]byte(fmt.Sprint(offers.Load())))
					c.Close()
				})
			},
		}
		c := dial(t, serve(t, &Server{Backend: b, Handler: h}))
		c.Write([]byte("x"))
		for offers.Load() < 3 {
			time.Sleep(time.Millisecond) // polling a condition; the deadline bounds the test
		}
		c.(*net.TCPConn).CloseWrite()
		got, _ := io.ReadAll(c)
		if string(got) != "4" {
			t.Errorf("OnData ran %s times, want 4 (the read, two ResumeReads, one after the end of file)", got)
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

// TestLoopHooks: OnLoopStart runs on each loop's goroutine before it serves
// anything, OnLoopStop after its connections have closed, once each.
func TestLoopHooks(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		var mu sync.Mutex
		started, stopped := map[*Loop]int{}, map[*Loop]int{}
		var opened atomic.Int64
		s := &Server{Backend: b, Loops: 2,
			OnLoopStart: func(l *Loop) {
				mu.Lock()
				started[l]++
				mu.Unlock()
				l.SetContext(new(int)) // on the loop goroutine: reactorcheck agrees
			},
			OnLoopStop: func(l *Loop) {
				mu.Lock()
				stopped[l]++
				mu.Unlock()
			},
			Handler: HandlerFuncs{
				Open: func(c *Conn) {
					if _, ok := c.Loop().Context().(*int); ok {
						opened.Add(1)
					}
				},
				Data: func(c *Conn, data []byte) { c.Write(data) },
			},
		}
		if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve() }()
		ls := loopsOf(t, s)
		for range 4 {
			c := dial(t, s.Addr().String())
			roundTrip(t, c, []byte("x")) // Echo-less handler: just opened
		}
		if err := s.Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		<-served
		mu.Lock()
		defer mu.Unlock()
		for _, l := range ls {
			if started[l] != 1 || stopped[l] != 1 {
				t.Errorf("loop %p: started %d, stopped %d times; want 1, 1", l, started[l], stopped[l])
			}
		}
		if opened.Load() < 4 {
			t.Errorf("%d connections saw the loop's context, want 4", opened.Load())
		}
	})
}
