package reactor

import (
	"net"
	"testing"
	"time"

	"github.com/muxkit/reactor/poller"
)

// TestStats: what Stats counts for a few echo connections, a refused one
// and an idle one.
func TestStats(t *testing.T) {
	forEachBackend(t, testStats)
}

func testStats(t *testing.T, be poller.Backend) {
	checkLeaks(t)
	s := &Server{Backend: be, Loops: 2, MaxConns: 3, IdleTimeout: 300 * time.Millisecond, Handler: Echo}
	if st := s.Stats(); st != (Stats{}) {
		t.Fatalf("Stats before Serve = %+v, want zero", st)
	}
	addr := serve(t, s)
	var cs []net.Conn
	for range 3 {
		c := dial(t, addr)
		roundTrip(t, c, []byte("hello"))
		cs = append(cs, c)
	}
	extra := dial(t, addr) // past MaxConns: closed at once
	if _, err := extra.Read(make([]byte, 1)); err == nil {
		t.Fatal("the connection past MaxConns was served")
	}
	cs[0].Close()
	cs[1].(*net.TCPConn).CloseWrite()
	readAll(t, cs[1])
	// cs[2] idles until its timeout.
	faultWait(t, "three closes", func() bool { return s.Stats().Open == 0 })
	st := s.Stats()
	want := Stats{Accepted: 3, Refused: 1, Closed: ClosedStats{Peer: 2, Idle: 1}, BytesIn: 15, BytesOut: 15}
	if st != want {
		t.Fatalf("Stats = %+v\nwant    %+v", st, want)
	}
}
