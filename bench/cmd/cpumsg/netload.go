//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muxkit/reactor/internal/loadgen"
)

// netGen is a closed-loop load on Go's net package, a goroutine per
// connection, as a Go client program would be written: each sends its
// message, reads the whole echo, and sends again. It is the other load
// generator of -load: a server that keeps up with internal/loadgen's
// single thread may behave otherwise under many goroutines that the Go
// scheduler wakes one by one.
type netGen struct {
	conns  []net.Conn
	count  atomic.Int64
	record atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	hists  []*loadgen.Histogram // one per connection, each under mu
	err    atomic.Value         // the first failure
}

// dialNet connects conns connections to addr and starts their loops.
func dialNet(addr string, conns, size int) (*netGen, error) {
	g := &netGen{stop: make(chan struct{})}
	for i := range conns {
		c, err := net.DialTimeout("tcp4", addr, 10*time.Second)
		if err != nil {
			g.Close()
			return nil, fmt.Errorf("net load: connection %d of %d: %w", i+1, conns, err)
		}
		g.conns = append(g.conns, c)
		g.hists = append(g.hists, new(loadgen.Histogram))
	}
	for i, c := range g.conns {
		g.wg.Add(1)
		go g.loop(c, g.hists[i], size)
	}
	return g, nil
}

func (g *netGen) loop(c net.Conn, h *loadgen.Histogram, size int) {
	defer g.wg.Done()
	msg, buf := make([]byte, size), make([]byte, size)
	for i := range msg {
		msg[i] = byte('a' + i%26)
	}
	for {
		select {
		case <-g.stop:
			return
		default:
		}
		t := time.Now()
		if _, err := c.Write(msg); err != nil {
			g.fail(err)
			return
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			g.fail(err)
			return
		}
		if g.record.Load() {
			d := time.Since(t)
			g.mu.Lock()
			h.Add(d)
			g.mu.Unlock()
			g.count.Add(1)
		}
	}
}

func (g *netGen) fail(err error) {
	select {
	case <-g.stop: // closing: not a failure
	default:
		g.err.CompareAndSwap(nil, err)
	}
}

// Run lets the load run for d; with measure, it counts the echoes and
// their round trips.
func (g *netGen) Run(d time.Duration, measure bool) (loadgen.Result, error) {
	if measure {
		g.mu.Lock()
		for _, h := range g.hists {
			h.Reset()
		}
		g.mu.Unlock()
		g.count.Store(0)
	}
	g.record.Store(measure)
	t0 := time.Now()
	time.Sleep(d)
	g.record.Store(false)
	r := loadgen.Result{Wall: time.Since(t0)}
	if err, _ := g.err.Load().(error); err != nil {
		return r, err
	}
	if measure {
		all := new(loadgen.Histogram)
		g.mu.Lock()
		for _, h := range g.hists {
			all.Merge(h)
		}
		g.mu.Unlock()
		r.Msgs = g.count.Load()
		r.Latency = all
		r.P50, r.P99, r.P999, r.Max = all.Quantile(0.5), all.Quantile(0.99), all.Quantile(0.999), all.Max()
	}
	return r, nil
}

// Close ends the loops and closes the connections.
func (g *netGen) Close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	for _, c := range g.conns {
		c.Close()
	}
	g.wg.Wait()
}
