package reactor_test

import (
	"errors"
	"runtime"
	"testing"
	"time"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/poller"
)

// TestGroupClose: Close tells every watch OnStop(ErrLoopClosed) once, ends
// the loop goroutines, and Posts after it fail with ErrLoopClosed.
func TestGroupClose(t *testing.T) {
	leakcheck.Check(t)
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	if g.Len() != 2 {
		t.Fatalf("Len %d, want 2", g.Len())
	}
	if a, b2, c := g.Next(), g.Next(), g.Next(); a == b2 || a != c {
		t.Fatal("Next does not take the loops in turn")
	}
	var recs []*watchRecorder
	for i := range g.Len() {
		r, _ := pipeFDs(t)
		rec := newWatchRecorder()
		recs = append(recs, rec)
		l := g.Loop(i)
		onLoop(t, l, func() {
			if _, err := l.Watch(r, reactor.Readable, rec); err != nil {
				t.Error(err)
			}
		})
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	for i, rec := range recs {
		select {
		case err := <-rec.stopped:
			if !errors.Is(err, reactor.ErrLoopClosed) {
				t.Errorf("watch %d: OnStop(%v), want ErrLoopClosed", i, err)
			}
		default:
			t.Errorf("watch %d: no OnStop", i)
		}
		if len(rec.stopped) != 0 {
			t.Errorf("watch %d: OnStop more than once", i)
		}
	}
	for i := range g.Len() {
		select {
		case <-g.Loop(i).Done():
		default:
			t.Errorf("loop %d not done after Close", i)
		}
		if err := g.Loop(i).Post(func() {}); !errors.Is(err, reactor.ErrLoopClosed) {
			t.Errorf("Post after Close: %v, want ErrLoopClosed", err)
		}
	}
	if err := g.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestNewGroupBadConfig: a bad config is an error and starts nothing.
func TestNewGroupBadConfig(t *testing.T) {
	leakcheck.Check(t)
	if _, err := reactor.NewGroup(reactor.GroupConfig{Loops: -1}); err == nil {
		t.Error("Loops -1 accepted")
	}
	if _, err := reactor.NewGroup(reactor.GroupConfig{Backend: poller.Kqueue}); runtime.GOOS == "linux" && !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("kqueue on linux: %v, want ErrUnsupported", err)
	}
	t.Setenv(reactor.BackendEnv, "nope")
	if _, err := reactor.NewGroup(reactor.GroupConfig{}); err == nil {
		t.Errorf("%s=nope accepted", reactor.BackendEnv)
	}
}

// TestGroupCloseFromCallback: Close called on one of the group's own loops
// returns at once and the group still ends.
func TestGroupCloseFromCallback(t *testing.T) {
	leakcheck.Check(t)
	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 2})
	if err != nil {
		t.Fatal(err)
	}
	res := make(chan error, 1)
	if err := g.Loop(1).Post(func() { res <- g.Close() }); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("Close from a loop: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close from a loop did not return within 10s")
	}
	if err := g.Close(); err != nil {
		t.Fatalf("Close from the test: %v", err)
	}
	for i := range g.Len() {
		select {
		case <-g.Loop(i).Done():
		default:
			t.Errorf("loop %d not done", i)
		}
	}
}
