package main

import (
	"bytes"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// gcTrace is a Go server's stderr under GODEBUG=gctrace=1 (-neighbors):
// it keeps the wall time of each stop-the-world whose collection ends
// while its window is open, exactly as the runtime prints it, where
// runtime/metrics buckets pauses a quarter of a power of two wide (41,
// 49, 57, 66 us), too coarse for a bar of 1.25x. Every other line goes on
// to out, and the gc lines too when the server's own environment asked
// for gctrace.
type gcTrace struct {
	out  io.Writer
	pass bool // the gc lines go on to out as well

	mu    sync.Mutex
	open  bool
	stops []float64 // us, both stops of each collection
	part  []byte    // a line not yet ended
}

// Write takes the server's stderr; safe to call while window runs on
// another goroutine.
func (g *gcTrace) Write(p []byte) (int, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.part = append(g.part, p...)
	for {
		i := bytes.IndexByte(g.part, '\n')
		if i < 0 {
			break
		}
		line := g.part[:i+1]
		sweep, mark, ok := parseGCTrace(string(line))
		if ok && g.open {
			g.stops = append(g.stops, sweep, mark)
		}
		if !ok || g.pass {
			g.out.Write(line)
		}
		g.part = g.part[i+1:]
	}
	g.part = slices.Clip(g.part) // let a long run's consumed lines go
	return len(p), nil
}

// window opens (true) or closes (false) the window, and returns the stops
// kept since the last time it opened (nil when opening).
func (g *gcTrace) window(open bool) []float64 {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open = open
	if open {
		g.stops = nil
		return nil
	}
	return g.stops
}

// parseGCTrace reads the two stop-the-world wall times, in microseconds,
// of a gctrace line: "gc 12 @3.140s 2%: 0.021+0.52+0.004 ms clock, ..."
// (sweep termination + concurrent mark + mark termination).
func parseGCTrace(line string) (sweep, mark float64, ok bool) {
	rest, ok := strings.CutPrefix(line, "gc ")
	if !ok {
		return 0, 0, false
	}
	_, rest, ok = strings.Cut(rest, ": ")
	if !ok {
		return 0, 0, false
	}
	clock, _, ok := strings.Cut(rest, " ms clock")
	if !ok {
		return 0, 0, false
	}
	f := strings.Split(clock, "+")
	if len(f) != 3 {
		return 0, 0, false
	}
	s, err1 := strconv.ParseFloat(f[0], 64)
	m, err2 := strconv.ParseFloat(f[2], 64)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return s * 1000, m * 1000, true
}
