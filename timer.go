package reactor

import "time"

// Timer is a function scheduled on a Loop by AfterFunc. Timers live in one
// binary heap per loop that sets the poller's wait timeout; there is no
// goroutine or runtime timer per Timer.
type Timer struct {
	loop  *Loop
	when  int64 // loop clock, nanoseconds
	index int   // position in the heap, -1 when not scheduled
	fn    func()
}

// Stop cancels t and reports whether it was still pending. Call it on t's
// loop goroutine (in a handler, a timer function or a Post'ed function); it
// does not allocate.
func (t *Timer) Stop() bool {
	if t.index < 0 {
		return false
	}
	t.loop.timers.remove(t)
	return true
}

// Reset reschedules t to fire d from now, whether or not it was pending.
// Call it on t's loop goroutine; it does not allocate.
func (t *Timer) Reset(d time.Duration) {
	t.loop.schedule(t, d)
}

// timerHeap is a min-heap of timers by when; ties fire in scheduling order
// only as far as the heap keeps it, which it does not promise.
type timerHeap []*Timer

func (h *timerHeap) push(t *Timer) {
	t.index = len(*h)
	*h = append(*h, t)
	h.up(t.index)
}

func (h *timerHeap) remove(t *Timer) {
	i := t.index
	last := len(*h) - 1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = nil
	*h = (*h)[:last]
	t.index = -1
	if i != last {
		h.fix(i)
	}
}

// fix restores the heap after the timer at i changed its when.
func (h *timerHeap) fix(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h timerHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index = i
	h[j].index = j
}

func (h timerHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].when <= h[i].when {
			return
		}
		h.swap(i, p)
		i = p
	}
}

func (h timerHeap) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r].when < h[l].when {
			m = r
		}
		if h[i].when <= h[m].when {
			break
		}
		h.swap(i, m)
		i = m
	}
	return i > start
}
