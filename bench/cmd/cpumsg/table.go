//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/muxkit/reactor/bench/internal/neighbors"
	"github.com/muxkit/reactor/internal/loadgen"
)

// testCase is one connection count and message size to measure.
type testCase struct {
	conns, size int
}

// parseCases parses "CONNSxSIZE,CONNSxSIZE,...".
func parseCases(s string) ([]testCase, error) {
	var cases []testCase
	for f := range strings.SplitSeq(s, ",") {
		c, z, ok := strings.Cut(f, "x")
		conns, err1 := strconv.Atoi(c)
		size, err2 := strconv.Atoi(z)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%q: want CONNSxSIZE, e.g. 1000x64", f)
		}
		cases = append(cases, testCase{conns, size})
	}
	return cases, nil
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit, explicitly:
// Go raises its own soft limit at start-up but hands the original one to
// the processes it starts, while after an explicit Setrlimit the servers
// (through taskset) inherit the raised one.
func raiseNoFile() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur >= lim.Max {
		return
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintf(os.Stderr, "cpumsg: raising RLIMIT_NOFILE to %d: %v\n", lim.Max, err)
	}
}

// idleMsgSize is the message echoed once on each idle connection.
const idleMsgSize = 64

// idleTimeout bounds one server's idle-memory measurement.
const idleTimeout = time.Minute

// idleResult is a server's resident memory without and with idle
// connections.
type idleResult struct {
	conns         int
	before, after int64 // VmRSS in bytes
}

func (r idleResult) perConn() float64 { return float64(r.after-r.before) / float64(r.conns) }

// measureIdle measures every server's resident memory per idle connection.
func measureIdle(cfg *config, bins map[string]string) (map[string]idleResult, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(cfg.idle)+64 {
		return nil, fmt.Errorf("-idle %d: RLIMIT_NOFILE is %d (hard %d); both the server and this process need %d fds", cfg.idle, lim.Cur, lim.Max, cfg.idle+64)
	}
	m := map[string]idleResult{}
	for _, name := range unique(cfg.servers) {
		r, err := idleRSS(cfg, name, bins[kind(name)])
		if err != nil {
			return nil, fmt.Errorf("%s, %d idle connections: %w", name, cfg.idle, err)
		}
		fmt.Fprintf(cfg.out, "idle %s: VmRSS %d KiB fresh, %d KiB with %d idle connections: %.0f bytes per connection\n",
			name, r.before>>10, r.after>>10, r.conns, r.perConn())
		m[name] = r
	}
	return m, nil
}

// idleRSS starts a fresh server, reads its VmRSS, opens cfg.idle
// connections echoing one message on each (so the server has accepted each
// and has seen it used), and reads its VmRSS again.
func idleRSS(cfg *config, name, bin string) (r idleResult, err error) {
	r.conns = cfg.idle
	s, err := start(cfg, name, bin, "")
	if err != nil {
		return r, err
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
		if err2 := s.stop(); err == nil {
			err = err2
		}
	}()
	if r.before, err = vmRSS(s.pid); err != nil {
		return r, err
	}
	msg, buf := make([]byte, idleMsgSize), make([]byte, idleMsgSize)
	deadline := time.Now().Add(idleTimeout)
	for i := range cfg.idle {
		c, err := net.DialTimeout("tcp4", s.addr, time.Until(deadline))
		if err != nil {
			return r, fmt.Errorf("connection %d: %w", i+1, err)
		}
		conns = append(conns, c)
		c.SetDeadline(deadline)
		if _, err := c.Write(msg); err != nil {
			return r, fmt.Errorf("connection %d: %w", i+1, err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			return r, fmt.Errorf("connection %d: %w", i+1, err)
		}
	}
	r.after, err = vmRSS(s.pid)
	return r, err
}

// vmRSS returns the resident set size of process pid from
// /proc/PID/status.
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc/PID/status")
}

// unique returns the servers in order, each once.
func unique(servers []string) []string {
	var u []string
	seen := map[string]bool{}
	for _, s := range servers {
		if !seen[s] {
			seen[s] = true
			u = append(u, s)
		}
	}
	return u
}

// total is a server's results in one case over all rounds.
type total struct {
	result
	disturbed bool // some round was noisy
}

// summary prints one table: per case and server, over all rounds, messages
// per second, p99, server CPU per message and its ratios to the net and C
// servers', and the resident memory per idle connection.
func summary(out io.Writer, cfg *config, all [][]result, idle map[string]idleResult) {
	load := "closed loop"
	if cfg.rate > 0 {
		load = fmt.Sprintf("open loop at %.0f msgs/s", cfg.rate)
	}
	fmt.Fprintf(out, "%v measured per server, case and round after %v warm-up, %d rounds alternating; server on CPU %d, load generator on CPU %d; %s, load %s\n%s\n",
		cfg.duration, cfg.warmup, cfg.rounds, cfg.serverCPU, cfg.clientCPU, load, cfg.load, cfg.wake)
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	rss := "RSS/idle conn B"
	if cfg.idle > 0 {
		rss = fmt.Sprintf("RSS/conn B (%d idle)", cfg.idle)
	}
	fmt.Fprintf(w, "server\tconns\tsize\tmsgs/s\tp99 us\tCPU us/msg\tvs net\tvs C\t%s\t\n", rss)
	for i, results := range all {
		totals := map[string]*total{}
		for _, r := range results {
			t := totals[r.server]
			if t == nil {
				t = &total{result: result{server: r.server, latency: new(loadgen.Histogram)}}
				totals[r.server] = t
			}
			t.msgs += r.msgs
			t.wall += r.wall
			t.cpu += r.cpu
			t.disturbed = t.disturbed || r.noisy()
			t.latency.Merge(r.latency)
		}
		ratio := func(t *total, base string) string {
			b := totals[base]
			if b == nil {
				return "-"
			}
			return fmt.Sprintf("%.2f", t.usPerMsg()/b.usPerMsg())
		}
		for _, name := range unique(cfg.servers) {
			t := totals[name]
			cpu := fmt.Sprintf("%.2f", t.usPerMsg())
			if t.disturbed {
				cpu += " !"
			}
			mem := "-"
			if r, ok := idle[name]; ok {
				mem = fmt.Sprintf("%.0f", r.perConn())
			}
			p99s := strconv.FormatInt(t.latency.Quantile(0.99).Microseconds(), 10)
			fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n",
				name, cfg.cases[i].conns, cfg.cases[i].size, float64(t.msgs)/t.wall.Seconds(),
				p99s, cpu, ratio(t, "net"), ratio(t, baseServer(cfg.servers)), mem)
		}
	}
	w.Flush()
	if cfg.neighbors {
		neighborTable(out, cfg, all)
	}
	fmt.Fprintf(out, "CPU us/msg: the server's utime+stime over the messages echoed, all rounds; ! when in some round other processes took more than %d%% of the server's CPU\n", noisy)
	if cfg.idle > 0 {
		fmt.Fprintf(out, "RSS/conn: growth of the server's VmRSS with %d connections open, one %d-byte echo done on each, over a fresh process\n", cfg.idle, idleMsgSize)
	}
}

// neighborTable prints what the rest of each Go server's program saw
// (-neighbors): per case and server, the median over rounds of each
// figure, and the quantiles of every stop-the-world gctrace printed in
// all rounds' windows.
func neighborTable(out io.Writer, cfg *config, all [][]result) {
	fmt.Fprintln(out, "\nthe rest of the program beside each server, medians over rounds (us): a 1 ms sleeper's lateness, a ping-pong pair's round trip, runtime/metrics /sched/latencies and GC stop-the-world pauses, the heap goal; gctrace stops: each stop-the-world's wall time as GODEBUG=gctrace=1 prints it, all rounds' windows pooled")
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "server\tconns\tsize\tsleeper runs/s\tlate p50\tlate p99\tlate max\tping p99\tsched p99\tGC pause p99\tGC pause max\theap goal MB\tgctrace stops\tstop p50\tstop p90\tstop p99\tstop max\t")
	for i, results := range all {
		for _, name := range unique(cfg.servers) {
			var rs []*neighbors.Report
			var stops []float64
			for _, r := range results {
				if r.server == name && r.neighbors != nil {
					rs = append(rs, r.neighbors)
					stops = append(stops, r.gcStops...)
				}
			}
			slices.Sort(stops)
			if len(rs) == 0 {
				continue
			}
			med := func(f func(*neighbors.Report) float64) float64 {
				x := make([]float64, len(rs))
				for j, r := range rs {
					x[j] = f(r)
				}
				slices.Sort(x)
				return median(x)
			}
			fmt.Fprintf(w, "%s\t%d\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.0f\t%.1f\t%d\t%.0f\t%.0f\t%.0f\t%.0f\t\n", name, cfg.cases[i].conns, cfg.cases[i].size,
				med(func(r *neighbors.Report) float64 { return float64(r.SleeperN) / r.Window }),
				med(func(r *neighbors.Report) float64 { return r.LateP50 }),
				med(func(r *neighbors.Report) float64 { return r.LateP99 }),
				med(func(r *neighbors.Report) float64 { return r.LateMax }),
				med(func(r *neighbors.Report) float64 { return r.PingP99 }),
				med(func(r *neighbors.Report) float64 { return r.SchedP99 }),
				med(func(r *neighbors.Report) float64 { return r.GCPauseP99 }),
				med(func(r *neighbors.Report) float64 { return r.GCPauseMax }),
				med(func(r *neighbors.Report) float64 { return r.HeapGoalMB }),
				len(stops), quantileOf(stops, 0.5), quantileOf(stops, 0.9), quantileOf(stops, 0.99), quantileOf(stops, 1))
		}
	}
	w.Flush()
}
