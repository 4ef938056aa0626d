package loadgen

import (
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

// TestQuantile: quantiles of a known histogram.
func TestQuantile(t *testing.T) {
	g := &Gen{latency: make([]uint32, maxBucket+1)}
	for i := range 100 {
		d := time.Duration(i+1) * time.Microsecond
		if i >= 98 {
			d = time.Duration(i-97) * 300 * time.Millisecond // 300 ms and 600 ms
		}
		g.latency[bucket(int64(d))]++
		g.maxLat = max(g.maxLat, int64(d))
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Microsecond}, {0.98, 98 * time.Microsecond}, {0.99, 300 * time.Millisecond}, {1, 600 * time.Millisecond}} {
		if got := g.quantile(c.q); got != c.want {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}
