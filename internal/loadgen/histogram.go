package loadgen

import (
	"math"
	"slices"
	"time"
)

// The histogram's buckets: 1 us wide up to 100 ms, then 1 ms wide up to
// 100 s; the last bucket is "that or more".
const (
	fineBuckets = 100_000
	maxBucket   = 2 * fineBuckets
)

// bucket is the bucket of a latency of ns nanoseconds.
func bucket(ns int64) int {
	us := ns / 1000
	if us < fineBuckets {
		return int(us)
	}
	return int(min(fineBuckets+(us-fineBuckets)/1000, maxBucket))
}

// bucketLatency is the lower bound of bucket i.
func bucketLatency(i int) time.Duration {
	if i < fineBuckets {
		return time.Duration(i) * time.Microsecond
	}
	return fineBuckets*time.Microsecond + time.Duration(i-fineBuckets)*time.Millisecond
}

// Histogram counts round-trip latencies: to 1 us below 100 ms, to 1 ms
// above, up to 100 s. The zero value is empty and ready; it allocates its
// buckets (1.6 MB) on the first Add. Not safe for concurrent use.
type Histogram struct {
	counts []uint32
	total  uint64
	max    time.Duration
}

// Add records one latency.
func (h *Histogram) Add(d time.Duration) {
	if h.counts == nil {
		h.counts = make([]uint32, maxBucket+1)
	}
	h.counts[bucket(int64(d))]++
	h.total++
	h.max = max(h.max, d)
}

// Merge adds every latency recorded in o.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.total == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint32, maxBucket+1)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// Reset empties h, keeping its buckets.
func (h *Histogram) Reset() {
	clear(h.counts)
	h.total, h.max = 0, 0
}

// Clone returns a copy of h.
func (h *Histogram) Clone() *Histogram {
	return &Histogram{counts: slices.Clone(h.counts), total: h.total, max: h.max}
}

// Count is the number of latencies recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest latency recorded.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile returns the q-quantile (0 < q <= 1) of the recorded latencies:
// the lower bound of its bucket, or Max when it falls in the last one; 0
// when nothing is recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(h.total)))
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= want && c > 0 {
			if i == maxBucket {
				return h.max
			}
			return bucketLatency(i)
		}
	}
	return h.max
}
