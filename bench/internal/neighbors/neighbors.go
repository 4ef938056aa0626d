// Package neighbors is the rest of a program beside a server: goroutines
// that a user's program runs next to its event loops, and what they see of
// them. A good loop leaves them alone; a loop that keeps its P, or never
// enters the scheduler, makes them late.
//
// The neighbors are
//
//   - a sleeper: a goroutine that sleeps 1 ms in a loop and records how
//     late each wake is (lateness: the time past the 1 ms it asked for);
//   - an allocator: a goroutine allocating about 50 MB/s of short-lived
//     slices, so the garbage collector runs (and stops the world) often;
//   - a ping-pong pair: one goroutine sends on a channel every millisecond
//     and the other answers; the round trip is how long a goroutine made
//     runnable waits to run.
//
// Besides those, Report reads the runtime's own view from runtime/metrics:
// /sched/latencies:seconds (how long goroutines waited in a run queue) and
// /sched/pauses/total/gc:seconds (the garbage collector's stop-the-world
// pauses), each over the window since Reset, and the heap goal.
package neighbors

import (
	"encoding/json"
	"math"
	"runtime/metrics"
	"slices"
	"sync"
	"time"
)

// Neighbors is a running set of neighbors.
type Neighbors struct {
	mu    sync.Mutex
	late  []time.Duration // the sleeper's lateness since Reset
	pings []time.Duration // the ping-pong round trips since Reset
	base  []metrics.Sample
	since time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
}

// sink keeps the allocator's slices from being optimised away.
var sink [][]byte

// metric names read by Reset and Report.
const (
	schedLatencies = "/sched/latencies:seconds"
	gcPauses       = "/sched/pauses/total/gc:seconds"
	gcStopping     = "/sched/pauses/stopping/gc:seconds"
	heapGoal       = "/gc/heap/goal:bytes"
)

// Start starts the neighbors; Reset begins a window, Report ends it.
// With spin, a fourth neighbor computes: it runs pure Go code, no system
// call, for 5 ms at a time, then sleeps for 5 ms.
func Start(spin bool) *Neighbors {
	n := &Neighbors{stop: make(chan struct{})}
	n.Reset()
	n.wg.Add(3)
	go n.sleeper()
	go n.allocator()
	go n.pingPong()
	if spin {
		n.wg.Add(1)
		go n.spinner()
	}
	return n
}

// spinSink keeps the spinner's work from being optimised away.
var spinSink uint64

func (n *Neighbors) spinner() {
	defer n.wg.Done()
	x := uint64(1)
	for {
		select {
		case <-n.stop:
			return
		default:
		}
		end := time.Now().Add(5 * time.Millisecond)
		for time.Now().Before(end) {
			for range 1000 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		spinSink = x
		time.Sleep(5 * time.Millisecond)
	}
}

// Stop ends the neighbors' goroutines.
func (n *Neighbors) Stop() {
	close(n.stop)
	n.wg.Wait()
}

func (n *Neighbors) sleeper() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stop:
			return
		default:
		}
		t := time.Now()
		time.Sleep(time.Millisecond)
		late := time.Since(t) - time.Millisecond
		n.mu.Lock()
		n.late = append(n.late, late)
		n.mu.Unlock()
	}
}

// allocator allocates 50 KB of 1 KB slices every millisecond, about
// 50 MB/s, keeping only the last batch.
func (n *Neighbors) allocator() {
	defer n.wg.Done()
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	batch := make([][]byte, 50)
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
		}
		for i := range batch {
			batch[i] = make([]byte, 1<<10)
		}
		sink = batch
		batch = make([][]byte, 50)
	}
}

func (n *Neighbors) pingPong() {
	defer n.wg.Done()
	ping, pong := make(chan time.Time), make(chan time.Time)
	go func() {
		for t := range ping {
			pong <- t
		}
	}()
	defer close(ping)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-tick.C:
		}
		ping <- time.Now()
		rt := time.Since(<-pong)
		n.mu.Lock()
		n.pings = append(n.pings, rt)
		n.mu.Unlock()
	}
}

// Reset starts a new window: the samples so far are dropped and the
// runtime's histograms are read as the window's base.
func (n *Neighbors) Reset() {
	base := read()
	n.mu.Lock()
	n.late, n.pings = n.late[:0], n.pings[:0]
	n.base, n.since = base, time.Now()
	n.mu.Unlock()
}

// read reads the metrics Report uses.
func read() []metrics.Sample {
	s := []metrics.Sample{{Name: schedLatencies}, {Name: gcPauses}, {Name: heapGoal}, {Name: gcStopping}}
	metrics.Read(s)
	return s
}

// Report is what the neighbors saw in one window. Durations are in
// microseconds, so that the JSON form reads as it prints.
type Report struct {
	Window     float64 `json:"window_s"`     // the window's length, seconds
	SleeperN   int     `json:"sleeper_runs"` // wakes of the 1 ms sleeper
	LateP50    float64 `json:"late_p50_us"`  // the sleeper's lateness
	LateP99    float64 `json:"late_p99_us"`
	LateMax    float64 `json:"late_max_us"`
	PingN      int     `json:"pings"`       // ping-pong round trips
	PingP99    float64 `json:"ping_p99_us"` // ping-pong round trip
	SchedP99   float64 `json:"sched_latency_p99_us"`
	GCPauses   uint64  `json:"gc_pauses"`
	GCPauseP99 float64 `json:"gc_pause_p99_us"`
	GCPauseMax float64 `json:"gc_pause_max_us"`
	GCStopP99  float64 `json:"gc_stopping_p99_us"` // of the pauses, the time to stop every goroutine
	HeapGoalMB float64 `json:"heap_goal_mb"`
}

// Report ends the window begun by the last Reset and returns what it saw.
func (n *Neighbors) Report() Report {
	now := read()
	n.mu.Lock()
	late, pings := slices.Clone(n.late), slices.Clone(n.pings)
	base, since := n.base, n.since
	n.mu.Unlock()
	r := Report{Window: time.Since(since).Seconds(), SleeperN: len(late), PingN: len(pings)}
	r.LateP50, r.LateP99, r.LateMax = quantile(late, 0.5), quantile(late, 0.99), quantile(late, 1)
	r.PingP99 = quantile(pings, 0.99)
	sched := delta(base[0].Value.Float64Histogram(), now[0].Value.Float64Histogram())
	r.SchedP99 = sched.quantile(0.99)
	gc := delta(base[1].Value.Float64Histogram(), now[1].Value.Float64Histogram())
	r.GCPauses, r.GCPauseP99, r.GCPauseMax = gc.total, gc.quantile(0.99), gc.quantile(1)
	r.HeapGoalMB = float64(now[2].Value.Uint64()) / 1e6
	r.GCStopP99 = delta(base[3].Value.Float64Histogram(), now[3].Value.Float64Histogram()).quantile(0.99)
	return r
}

// JSON returns r as one line of JSON.
func (r Report) JSON() string {
	b, _ := json.Marshal(r)
	return string(b)
}

// quantile returns the q-quantile of d in microseconds, 0 if d is empty.
func quantile(d []time.Duration, q float64) float64 {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := min(int(math.Ceil(q*float64(len(d))))-1, len(d)-1)
	return float64(d[max(i, 0)]) / 1e3
}

// hist is the difference of two readings of a runtime histogram.
type hist struct {
	counts  []uint64
	buckets []float64
	total   uint64
}

func delta(a, b *metrics.Float64Histogram) hist {
	h := hist{counts: make([]uint64, len(b.Counts)), buckets: b.Buckets}
	for i := range b.Counts {
		h.counts[i] = b.Counts[i] - a.Counts[i]
		h.total += h.counts[i]
	}
	return h
}

// quantile returns the upper bound of the bucket holding the q-quantile,
// in microseconds (the lower bound for the last, unbounded bucket); 0
// without samples.
func (h hist) quantile(q float64) float64 {
	if h.total == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(h.total)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= max(want, 1) {
			hi := h.buckets[i+1]
			if math.IsInf(hi, 1) {
				hi = h.buckets[i]
			}
			return hi * 1e6
		}
	}
	return h.buckets[len(h.buckets)-1] * 1e6
}
