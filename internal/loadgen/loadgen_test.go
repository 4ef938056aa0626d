package loadgen

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestBuckets: latencies land in a bucket whose lower bound is at most the
// latency and within the bucket's width of it, across both ranges.
func TestBuckets(t *testing.T) {
	for _, d := range []time.Duration{0, 999 * time.Nanosecond, time.Microsecond, 57 * time.Microsecond,
		99_999 * time.Microsecond, 100 * time.Millisecond, 205 * time.Millisecond, 4120 * time.Millisecond, 99 * time.Second} {
		i := bucket(int64(d))
		lo := bucketLatency(i)
		width := time.Microsecond
		if i >= fineBuckets {
			width = time.Millisecond
		}
		if lo > d || d-lo >= width {
			t.Errorf("%v: bucket %d starts at %v (width %v)", d, i, lo, width)
		}
	}
	if i := bucket(int64(time.Hour)); i != maxBucket {
		t.Errorf("an hour: bucket %d, want the last, %d", i, maxBucket)
	}
}

// TestQuantile: quantiles of a known histogram, and Merge.
func TestQuantile(t *testing.T) {
	var h Histogram
	for i := range 100 {
		d := time.Duration(i+1) * time.Microsecond
		if i >= 98 {
			d = time.Duration(i-97) * 300 * time.Millisecond // 300 ms and 600 ms
		}
		h.Add(d)
	}
	check := func(h *Histogram, cases map[float64]time.Duration) {
		t.Helper()
		for q, want := range cases {
			if got := h.Quantile(q); got != want {
				t.Errorf("Quantile(%v) = %v, want %v", q, got, want)
			}
		}
	}
	check(&h, map[float64]time.Duration{0.5: 50 * time.Microsecond, 0.98: 98 * time.Microsecond, 0.99: 300 * time.Millisecond, 1: 600 * time.Millisecond})
	if h.Count() != 100 || h.Max() != 600*time.Millisecond {
		t.Errorf("Count %d, Max %v", h.Count(), h.Max())
	}
	var m Histogram
	m.Merge(&h)
	m.Merge(h.Clone())
	check(&m, map[float64]time.Duration{0.5: 50 * time.Microsecond, 0.99: 300 * time.Millisecond})
	if m.Count() != 200 {
		t.Errorf("merged Count %d, want 200", m.Count())
	}
	h.Reset()
	if h.Count() != 0 || h.Quantile(0.5) != 0 {
		t.Errorf("after Reset: Count %d, median %v", h.Count(), h.Quantile(0.5))
	}
}

// echoServer serves echo over loopback with Go's net package until the
// test ends, and returns its address.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { io.Copy(c, c); c.Close() })
		}
	})
	return ln.Addr().String()
}

// TestOpenLoop: with a Rate, the generator sends no more than the rate
// allows (the closed loop would send as fast as echoes come back), every
// message sent is echoed and counted, and no connection is lost.
func TestOpenLoop(t *testing.T) {
	const rate, d = 2000, 300 * time.Millisecond
	g, err := Dial(Config{Addr: echoServer(t), Active: 4, Size: 64, Rate: rate}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Waiting() != 0 {
		t.Fatalf("%d connections without their first echo", g.Waiting())
	}
	res, err := g.Run(d, true)
	if err != nil {
		t.Fatal(err)
	}
	most := int64(res.Wall.Seconds()*rate) + 1
	if res.Msgs > most || res.Msgs < most/4 {
		t.Errorf("%d echoes in %v at %d/s: want at most %d, and not far below", res.Msgs, res.Wall, rate, most)
	}
	if res.Latency.Count() != uint64(res.Msgs) || res.Closed != 0 {
		t.Errorf("%d latencies for %d echoes, %d connections lost", res.Latency.Count(), res.Msgs, res.Closed)
	}
}

// TestBadConfig: a configuration that cannot run is an error.
func TestBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Addr: "127.0.0.1:1", Size: 64},
		{Addr: "127.0.0.1:1", Active: 1},
		{Addr: "127.0.0.1:1", Active: 1, Size: 1, Rate: -1},
		{Addr: "127.0.0.1:1", Idle: 1, Size: 1, Rate: 10},
	} {
		if g, err := Dial(cfg, time.Second); err == nil {
			g.Close()
			t.Errorf("Dial(%+v) succeeded", cfg)
		}
	}
}
