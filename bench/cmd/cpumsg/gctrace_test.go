package main

import (
	"slices"
	"strings"
	"testing"
)

func TestParseGCTrace(t *testing.T) {
	for _, tc := range []struct {
		line        string
		sweep, mark float64
		ok          bool
	}{
		{"gc 1 @0.063s 0%: 0.009+0.56+0.005 ms clock, 0.009+0.079/0.15/0+0.005 ms cpu, 3->3->0 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 1 P\n", 9, 5, true},
		{"gc 812 @20.4s 3%: 1.2+3.4+0.041 ms clock, 2.4+0.1/1/0+0.08 ms cpu, 4->4->0 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P\n", 1200, 41, true},
		{"gc 3 @1s 1%: 0.1+0.2 ms clock\n", 0, 0, false},
		{"gc 3 @1s 1%: x+0.2+0.3 ms clock\n", 0, 0, false},
		{"listening on 127.0.0.1:1\n", 0, 0, false},
		{"gc 1 @0.1s 0%: no clock here\n", 0, 0, false},
	} {
		sweep, mark, ok := parseGCTrace(tc.line)
		if ok != tc.ok || !near(sweep, tc.sweep) || !near(mark, tc.mark) {
			t.Errorf("parseGCTrace(%q) = %v, %v, %v; want %v, %v, %v", tc.line, sweep, mark, ok, tc.sweep, tc.mark, tc.ok)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }

// TestGCTraceWindow: only the collections that end in the window count,
// other lines pass on whole even when split across writes, and the gc
// lines pass on only when asked for.
func TestGCTraceWindow(t *testing.T) {
	for _, pass := range []bool{false, true} {
		var out strings.Builder
		g := &gcTrace{out: &out, pass: pass}
		gc := func(s string) string { return "gc 1 @1s 0%: " + s + " ms clock, 1 P\n" }
		g.Write([]byte(gc("0.010+1+0.002")))
		g.window(true)
		g.Write([]byte("some " + gc("0.020+1+0.003")[:0]))
		g.Write([]byte("log line\n" + gc("0.020+1+0.003")[:9]))
		g.Write([]byte(gc("0.020+1+0.003")[9:]))
		got := g.window(false)
		g.Write([]byte(gc("0.030+1+0.004")))
		if want := []float64{20, 3}; !slices.Equal(got, want) {
			t.Errorf("pass %v: stops in the window %v, want %v", pass, got, want)
		}
		want := "some log line\n"
		if pass {
			want = gc("0.010+1+0.002") + want + gc("0.020+1+0.003") + gc("0.030+1+0.004")
		}
		if out.String() != want {
			t.Errorf("pass %v: passed on %q, want %q", pass, out.String(), want)
		}
	}
}

func TestWithGCTrace(t *testing.T) {
	for _, tc := range []struct {
		env, want []string
		asked     bool
	}{
		{[]string{"A=1"}, []string{"A=1", "GODEBUG=gctrace=1"}, false},
		{[]string{"GODEBUG=x=1", "B=2"}, []string{"GODEBUG=x=1,gctrace=1", "B=2"}, false},
		{[]string{"GODEBUG=", "GODEBUG=madvdontneed=1"}, []string{"GODEBUG=", "GODEBUG=madvdontneed=1,gctrace=1"}, false},
		{[]string{"GODEBUG=gctrace=1,x=2"}, []string{"GODEBUG=gctrace=1,x=2"}, true},
	} {
		in := slices.Clone(tc.env)
		got, asked := withGCTrace(tc.env)
		if !slices.Equal(got, tc.want) || asked != tc.asked {
			t.Errorf("withGCTrace(%q) = %q, %v; want %q, %v", in, got, asked, tc.want, tc.asked)
		}
		if !slices.Equal(tc.env, in) {
			t.Errorf("withGCTrace changed its argument: %q, was %q", tc.env, in)
		}
	}
}

func TestQuantileOf(t *testing.T) {
	x := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for q, want := range map[float64]float64{0.5: 5, 0.9: 9, 0.99: 10, 1: 10, 0: 1} {
		if got := quantileOf(x, q); got != want {
			t.Errorf("quantileOf(1..10, %v) = %v, want %v", q, got, want)
		}
	}
	if got := quantileOf(nil, 0.5); got != 0 {
		t.Errorf("quantileOf(nil) = %v, want 0", got)
	}
}
