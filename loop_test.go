package reactor

import (
	"context"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muxkit/reactor/poller"
)

// TestLoopContext: each loop keeps its own value, shared by its
// connections.
func TestLoopContext(t *testing.T) {
	forEachBackend(t, func(t *testing.T, be poller.Backend) { testLoopContext(t, be) })
}

func testLoopContext(t *testing.T, be poller.Backend) {
	checkLeaks(t)
	s := &Server{Backend: be, Loops: 2, Handler: HandlerFuncs{Data: func(c *Conn, data []byte) {
		l := c.Loop()
		n, _ := l.Context().(int)
		l.SetContext(n + 1)
		c.Write([]byte(strconv.Itoa(n + 1)))
	}}}
	addr := serve(t, s)
	a, b := dial(t, addr), dial(t, addr) // one per loop: dealt in turn
	for i, want := range []string{"1", "2", "3"} {
		if got := roundTrip(t, a, []byte("x")); string(got) != want {
			t.Fatalf("round %d on a: count %s, want %s", i, got, want)
		}
	}
	if got := roundTrip(t, b, []byte("x")); string(got) != "1" {
		t.Fatalf("b's loop count %s, want 1: the loops share a context", got)
	}
}

// logRecorder is an slog.Handler keeping the messages it gets, with their
// attributes.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

// loggerOrNil is a Logger writing to r, or nil for a nil r.
func (r *logRecorder) loggerOrNil() *slog.Logger {
	if r == nil {
		return nil
	}
	return slog.New(r)
}

func (r *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }

func (r *logRecorder) WithGroup(string) slog.Handler { return r }

func (r *logRecorder) Handle(_ context.Context, rec slog.Record) error {
	msg := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	r.mu.Lock()
	r.msgs = append(r.msgs, msg)
	r.mu.Unlock()
	return nil
}

// has reports whether a message containing all of parts was logged.
func (r *logRecorder) has(parts ...string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.msgs {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(m, p)
		}
		if all {
			return true
		}
	}
	return false
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

// TestClientOnOneP: with one P, a client goroutine in the same program as
// a loop gets its round trips promptly, on every backend: the loop never
// holds the P the client needs. The client waits in Go's netpoller for
// each reply, so it runs only once something polls the netpoller: the
// scheduler, when the loop's goroutine leaves the P, or the runtime's
// monitor, which takes a P from a goroutine blocked in a system call. The
// completion engine as it was, holding its P in a raw wait for up to 5 ms
// after each busy turn, made each round trip wait out the hold; a loop
// whose blocking waits ended after 5 ms, before the monitor took the P,
// made each wait 5-10 ms. The monitor looks only every 10 ms in a program
// that gives it nothing to take, so the test first spins for 50 ms to put
// it there.
func TestClientOnOneP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b poller.Backend) {
		checkLeaks(t)
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
		addr := serve(t, &Server{Handler: Echo, Backend: b, Loops: 1})
		c := dial(t, addr) // 30 s deadline: a starved client fails, not hangs
		msg := []byte("ping")
		roundTrip(t, c, msg)
		for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
		}
		var rtt []time.Duration
		for range 200 {
			t0 := time.Now()
			if got := roundTrip(t, c, msg); string(got) != string(msg) {
				t.Fatalf("echo %q, want %q", got, msg)
			}
			rtt = append(rtt, time.Since(t0))
		}
		slices.Sort(rtt)
		if m := rtt[len(rtt)/2]; m > 2*time.Millisecond {
			t.Errorf("median round trip %v with the client on the loop's P, want < 2 ms (a loop holding its P makes it wait)", m)
		}
	})
}
