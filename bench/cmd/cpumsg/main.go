//go:build linux

// Command cpumsg measures the server CPU time per echoed message of the
// reactor next to a small single-threaded C epoll echo server, side by side
// in one run.
//
//	cd bench && go run ./cmd/cpumsg [-conns 1000] [-size 64] [-duration 10s] [-servers c,reactor] [-rounds 2]
//	cd bench && go run ./cmd/cpumsg -table -cases 100x64,1000x512 -idle 5000 -servers c,reactor,gnet,net
//
// It builds the C server (gcc -O2, cepoll/echo.c) and the reactor server
// (go build ./cmd/reactorecho: Loops=1, epoll unless the server's @VAR
// sets REACTOR_BACKEND), then for each round starts
// each server in turn (C, reactor, C, reactor, ...) as a child process
// pinned to one CPU (taskset -c 0), while the load generator, this process,
// runs pinned to another (it re-executes itself under taskset -c 1).
//
// The load generator is one goroutine on one locked OS thread driving all
// connections through its own epoll: each connection sends -size bytes,
// waits for the whole echo and sends again (a closed loop, one message in
// flight per connection). After -warmup it reads the server's utime+stime
// from /proc/PID/stat, counts the echoes completed for -duration, reads the
// CPU time again, and reports the server's CPU time divided by the messages
// echoed. On a two-core machine the load generator can saturate its core
// before a good server does, so messages per second alone cannot tell
// servers apart; CPU time per message can.
//
// With -rate the load is an open loop instead: messages are due at a fixed
// rate over all connections, each sent on a connection with none in flight,
// and its latency counts from when it was due (internal/loadgen's
// Config.Rate).
//
// With -cases it measures several connection counts and message sizes in
// one run, with -idle the server memory per idle connection, and with
// -table it prints one summary table of everything (table.go).
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/muxkit/reactor/bench/internal/neighbors"
	"github.com/muxkit/reactor/internal/loadgen"
)

// noisy is the share of the server's CPU, in percent, taken by something
// else above which a row is marked as disturbed.
const noisy = 10

// pinnedEnv marks the process re-executed under taskset.
const pinnedEnv = "CPUMSG_PINNED"

type config struct {
	conns     int
	size      int
	rate      float64 // open loop: messages per second over all connections; 0: closed loop
	duration  time.Duration
	warmup    time.Duration
	servers   []string
	rounds    int
	serverCPU int
	clientCPU int
	pprof     string
	threads   bool
	procs     int
	dir       string
	clkTck    int64
	cases     []testCase
	idle      int
	table     bool
	wake      string    // the machine's cost of one sleep and wake (cwake/wake.c)
	neighbors bool      // run the rest of a program beside the Go servers and report what it saw
	loops     int       // the reactor model's -loops (0: GOMAXPROCS)
	load      string    // the load generator: epoll (internal/loadgen) or net (a goroutine per connection on Go's net)
	proto     string    // tcp, or udp (the datagram load, udpload.go)
	window    int       // udp: datagrams in flight per client
	gso       bool      // udp: the clients send their window in GSO runs
	out       io.Writer // where the per-case reports go
}

func main() {
	var cfg config
	var servers string
	flag.IntVar(&cfg.conns, "conns", 1000, "client connections")
	flag.IntVar(&cfg.size, "size", 64, "message size in bytes (at most 16384)")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time per server per round")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "unmeasured time before each measurement")
	flag.StringVar(&servers, "servers", "c,reactor", "comma-separated servers to measure, in order: c, reactor, gnet, evio, nbio (those libraries, one event loop), and for reference net (Go net package, goroutine per connection), raw (echo.c transcribed to Go, no reactor), rawpark (raw, parking in Go's netpoller when idle); NAME@VAR=VALUE[@VAR=VALUE] adds to a server's environment, e.g. reactor@GOMAXPROCS=2")
	flag.Float64Var(&cfg.rate, "rate", 0, "an open loop instead of the closed one: this many messages per second in all, each on a connection with none in flight, latency counted from when it was due (pick about half of the closed loop's msgs/s to test a server's latency at a load it can carry)")
	flag.IntVar(&cfg.rounds, "rounds", 2, "times each server is measured, alternating")
	flag.IntVar(&cfg.serverCPU, "server-cpu", 0, "CPU the server is pinned to (-1: no pinning)")
	flag.IntVar(&cfg.clientCPU, "client-cpu", 1, "CPU the load generator is pinned to (-1: no pinning)")
	flag.StringVar(&cfg.pprof, "pprof", "", "write a CPU profile of the reactor server's last run to `file`")
	flag.BoolVar(&cfg.threads, "threads", false, "print each server thread's share of the measured CPU time and its context switches")
	flag.IntVar(&cfg.procs, "gomaxprocs", 0, "GOMAXPROCS of the Go servers (0: Go's default, 1 when pinned to one CPU)")
	flag.StringVar(&cfg.dir, "dir", "", "the bench module's directory (default: found from the working directory)")
	cases := flag.String("cases", "", "comma-separated CONNSxSIZE cases, e.g. 1x64,1000x512, each measured as -conns and -size would be (default: -conns x -size)")
	flag.IntVar(&cfg.idle, "idle", 0, "also measure each server's resident memory per idle connection with this many connections (0: don't)")
	flag.BoolVar(&cfg.table, "table", false, "print one summary table on stdout; the per-case reports go to stderr")
	flag.BoolVar(&cfg.neighbors, "neighbors", false, "run the rest of a program beside each Go server (a 1 ms sleeper, a 50 MB/s allocator, a ping-pong pair: bench/internal/neighbors) and report what it saw in the measured window, with each GC stop-the-world as GODEBUG=gctrace=1 prints it")
	flag.IntVar(&cfg.loops, "loops", 1, "event loops of the reactor server (0: its default, GOMAXPROCS)")
	flag.StringVar(&cfg.proto, "proto", "tcp", "tcp, or udp: the servers echo datagrams (c-udp, reactor, net) and -conns clients each keep -window datagrams in flight")
	flag.IntVar(&cfg.window, "window", 1, "udp: datagrams in flight per client")
	flag.BoolVar(&cfg.gso, "gso", false, "udp: the clients send their window in runs the kernel splits (UDP GSO), as quic-go sends")
	flag.StringVar(&cfg.load, "load", "epoll", "the closed-loop load generator: epoll (one goroutine on one locked thread over epoll) or net (a goroutine per connection on Go's net package); -rate needs epoll")
	flag.Parse()
	if cfg.load != "epoll" && cfg.load != "net" || cfg.load == "net" && cfg.rate > 0 {
		usage("-load %q: want epoll, or net without -rate", cfg.load)
	}
	cfg.servers = strings.Split(servers, ",")
	for _, s := range cfg.servers {
		if k := kind(s); !slices.Contains(cServers, k) && !slices.Contains(goServers, k) {
			usage("-servers: unknown server %q (want c, c-uring, reactor, gnet, evio, nbio, net, raw, rawpark or uring, each optionally followed by @VAR=VALUE... for its environment; c-uring@URING_BATCH=1 batches its wake-ups)", s)
		}
	}
	if *cases == "" {
		cfg.cases = []testCase{{cfg.conns, cfg.size}}
	} else {
		var err error
		if cfg.cases, err = parseCases(*cases); err != nil {
			usage("-cases: %v", err)
		}
	}
	for _, c := range cfg.cases {
		if c.conns < 1 || c.size < 1 || c.size > 16384 {
			usage("want -conns >= 1 and 1 <= -size <= 16384 (case %dx%d)", c.conns, c.size)
		}
	}
	if cfg.duration <= 0 || cfg.warmup < 0 || cfg.rounds < 1 || cfg.idle < 0 {
		usage("want -duration > 0, -warmup >= 0, -rounds >= 1, -idle >= 0")
	}
	cfg.out = os.Stdout
	if cfg.table {
		cfg.out = os.Stderr
	}
	raiseNoFile()
	pin(cfg.clientCPU)
	if err := buildAndRun(&cfg); err != nil {
		fail(err)
	}
}

// buildAndRun builds the servers in a temporary directory and measures them.
func buildAndRun(cfg *config) error {
	var err error
	if cfg.dir, err = benchDir(cfg.dir); err != nil {
		return err
	}
	cfg.clkTck = clockTicks()
	tmp, err := os.MkdirTemp("", "cpumsg")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bins, err := build(cfg.dir, tmp, cfg.servers)
	if err != nil {
		return err
	}
	cfg.wake = wakeCost(cfg, tmp)
	fmt.Fprintln(os.Stderr, "cpumsg:", cfg.wake)
	return run(cfg, bins)
}

// wakeCost builds and runs cwake/wake.c, this machine's cost of one sleep
// and wake between the server's CPU and the load generator's, and returns
// its line (or why not). Wake batching pays in proportion to it: the
// figure changes from one day to the next on a VM.
func wakeCost(cfg *config, tmp string) string {
	if cfg.serverCPU < 0 || cfg.clientCPU < 0 {
		return "sleep and wake: not measured (unpinned)"
	}
	bin := filepath.Join(tmp, "wake")
	if out, err := exec.Command("gcc", "-O2", "-o", bin, filepath.Join(cfg.dir, "cwake", "wake.c"), "-lpthread").CombinedOutput(); err != nil {
		return fmt.Sprintf("sleep and wake: not measured (gcc: %v: %s)", err, out)
	}
	out, err := exec.Command(bin, strconv.Itoa(cfg.serverCPU), strconv.Itoa(cfg.clientCPU)).Output()
	if err != nil {
		return fmt.Sprintf("sleep and wake: not measured (%v)", err)
	}
	return strings.TrimSpace(string(out))
}

// cServers are the C servers: the epoll one (cepoll/echo.c), the io_uring
// one (curing/echo.c, linked with the distribution's liburing) and the UDP
// one (cudp/echo.c, for -proto udp).
var cServers = []string{"c", "c-uring", "c-udp"}

// baseServer is the server the ratios are against: the first C server of
// -servers (c for TCP, c-udp for -proto udp), "" if none.
func baseServer(servers []string) string {
	for _, s := range servers {
		if slices.Contains(cServers, kind(s)) && !strings.Contains(s, "@") {
			return s
		}
	}
	return ""
}

// goServers are the servers cmd/reactorecho runs, by its -model.
var goServers = []string{"reactor", "gnet", "evio", "nbio", "net", "raw", "rawpark", "uring"}

// kind returns the server of a -servers entry, without its environment.
func kind(spec string) string {
	k, _, _ := strings.Cut(spec, "@")
	return k
}

// pin re-executes this program under taskset -c cpu, once, so that every
// thread of the load generator runs on that CPU (and GOMAXPROCS is 1).
func pin(cpu int) {
	if cpu < 0 || os.Getenv(pinnedEnv) != "" {
		return
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cpumsg: no taskset; running unpinned")
		return
	}
	self, err := os.Executable()
	if err != nil {
		fail(err)
	}
	argv := append([]string{"taskset", "-c", strconv.Itoa(cpu), self}, os.Args[1:]...)
	fail(syscall.Exec(taskset, argv, append(os.Environ(), pinnedEnv+"=1")))
}

// benchDir finds the bench module: dir if set, else the working directory
// or one of its parents holding cepoll/echo.c.
func benchDir(dir string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		for _, c := range []string{d, filepath.Join(d, "bench")} {
			if _, err := os.Stat(filepath.Join(c, "cepoll", "echo.c")); err == nil {
				return c, nil
			}
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("cannot find the bench module (cepoll/echo.c) from %s; use -dir", wd)
		}
	}
}

// clockTicks returns the kernel's clock ticks per second (getconf CLK_TCK),
// the unit of utime and stime in /proc/PID/stat; 100 if getconf fails.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	return 100
}

// build compiles the servers into tmp and returns their binaries by name.
func build(dir, tmp string, servers []string) (map[string]string, error) {
	bins := map[string]string{}
	kinds := make([]string, len(servers))
	for i, s := range servers {
		kinds[i] = kind(s)
	}
	servers = kinds
	if slices.Contains(servers, "c") {
		bin := filepath.Join(tmp, "cepoll")
		cmd := exec.Command("gcc", "-O2", "-o", bin, filepath.Join(dir, "cepoll", "echo.c"))
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("gcc: %v\n%s", err, out)
		}
		bins["c"] = bin
	}
	if slices.Contains(servers, "c-udp") {
		bin := filepath.Join(tmp, "cudp")
		cmd := exec.Command("gcc", "-O2", "-o", bin, filepath.Join(dir, "cudp", "echo.c"))
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("gcc: %v\n%s", err, out)
		}
		bins["c-udp"] = bin
	}
	if slices.Contains(servers, "c-uring") {
		bin := filepath.Join(tmp, "curing")
		cmd := exec.Command("gcc", "-O2", "-o", bin, filepath.Join(dir, "curing", "echo.c"), "-luring")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("gcc (curing/echo.c needs liburing-dev): %v\n%s", err, out)
		}
		bins["c-uring"] = bin
	}
	if slices.ContainsFunc(servers, func(s string) bool { return !slices.Contains(cServers, s) }) {
		bin := filepath.Join(tmp, "reactorecho")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/reactorecho")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/reactorecho: %v\n%s", err, out)
		}
		for _, k := range goServers {
			bins[k] = bin
		}
	}
	return bins, nil
}

// result is one measurement of one server.
type result struct {
	server     string
	round      int
	msgs       int64
	wall       time.Duration
	cpu        time.Duration // server utime+stime from /proc/PID/stat
	sched      time.Duration // server on-CPU time from /proc/PID/task/*/schedstat
	genCPU     time.Duration // load generator utime+stime
	cpuBusy    time.Duration // busy time of the server's CPU, /proc/stat (incl. steal)
	p50, p99   time.Duration
	late       int64 // open loop: messages sent more than 1 ms after they were due
	cpusAllow  string
	threadsEnd int
	latency    *loadgen.Histogram // the measured window's round trips
	neighbors  *neighbors.Report  // what the rest of the program saw (-neighbors, Go servers)
	gcStops    []float64          // the window's stop-the-world wall times, us, from gctrace (-neighbors)
}

func (r *result) usPerMsg() float64 { return float64(r.cpu.Microseconds()) / float64(r.msgs) }

// otherPct is the share of the server's CPU busy with something else.
func (r *result) otherPct() float64 {
	return 100 * max(r.cpuBusy-r.cpu, 0).Seconds() / r.wall.Seconds()
}

// noisy reports whether something else took more than noisy percent of
// the server's CPU.
func (r *result) noisy() bool { return r.cpuBusy > 0 && r.otherPct() > noisy }

// run measures every case and, with -idle, every server's idle memory.
func run(cfg *config, bins map[string]string) error {
	var all [][]result
	for _, c := range cfg.cases {
		one := *cfg
		one.conns, one.size = c.conns, c.size
		results, err := runCase(&one, bins)
		if err != nil {
			return err
		}
		all = append(all, results)
	}
	var idle map[string]idleResult
	if cfg.idle > 0 {
		var err error
		if idle, err = measureIdle(cfg, bins); err != nil {
			return err
		}
	}
	if cfg.table {
		summary(os.Stdout, cfg, all, idle)
	}
	return nil
}

// runCase measures every server for cfg.conns and cfg.size over the rounds
// and prints its report.
func runCase(cfg *config, bins map[string]string) ([]result, error) {
	host, _ := os.Hostname()
	load := "closed loop"
	if cfg.rate > 0 {
		load = fmt.Sprintf("open loop at %.0f msgs/s", cfg.rate)
	}
	fmt.Fprintf(cfg.out, "cpumsg: %s, %d conns, %d-byte messages, %v per run after %v warm-up, %d round(s), server on CPU %d, load generator on CPU %d, CLK_TCK %d, GOMAXPROCS %d, host %s\n",
		load, cfg.conns, cfg.size, cfg.duration, cfg.warmup, cfg.rounds, cfg.serverCPU, cfg.clientCPU, cfg.clkTck, runtime.GOMAXPROCS(0), host)
	var results []result
	for round := 1; round <= cfg.rounds; round++ {
		for _, name := range cfg.servers {
			profile := ""
			if kind(name) == "reactor" && round == cfg.rounds {
				profile = cfg.pprof
			}
			r, err := measure(cfg, name, bins[kind(name)], profile)
			if err != nil {
				return nil, fmt.Errorf("%s, %d conns, %d bytes, round %d: %w", name, cfg.conns, cfg.size, round, err)
			}
			r.round = round
			fmt.Fprintf(os.Stderr, "  %s round %d: %.0f msgs/s, %.3f us/msg, p99 %v\n",
				name, round, float64(r.msgs)/r.wall.Seconds(), r.usPerMsg(), r.p99)
			if n := r.neighbors; n != nil {
				fmt.Fprintf(os.Stderr, "  %s round %d neighbors: sleeper %d runs, late p50 %.0f p99 %.0f max %.0f us; ping-pong p99 %.0f us; sched latency p99 %.0f us; %d GC pauses, p99 %.0f max %.0f us (stopping p99 %.0f us); heap goal %.1f MB\n",
					name, round, n.SleeperN, n.LateP50, n.LateP99, n.LateMax, n.PingP99, n.SchedP99, n.GCPauses, n.GCPauseP99, n.GCPauseMax, n.GCStopP99, n.HeapGoalMB)
				st := slices.Sorted(slices.Values(r.gcStops))
				fmt.Fprintf(os.Stderr, "  %s round %d gctrace: %d stops, p50 %.0f p90 %.0f p99 %.0f max %.0f us\n",
					name, round, len(st), quantileOf(st, 0.5), quantileOf(st, 0.9), quantileOf(st, 0.99), quantileOf(st, 1))
			}
			if r.late > 0 {
				fmt.Fprintf(os.Stderr, "  %s round %d: %d of %d messages went out more than 1 ms late (no connection free, or the generator behind: past a few, the rate is more than this server carries)\n",
					name, round, r.late, r.msgs)
			}
			results = append(results, r)
		}
	}
	report(cfg, results)
	return results, nil
}

// report prints one row per measurement and one per server over all rounds,
// with the ratio of CPU time per message to the C server's.
func report(cfg *config, results []result) {
	total := map[string]*result{}
	for _, r := range results {
		t := total[r.server]
		if t == nil {
			t = &result{server: r.server}
			total[r.server] = t
		}
		t.msgs += r.msgs
		t.wall += r.wall
		t.cpu += r.cpu
		t.sched += r.sched
		t.genCPU += r.genCPU
		t.cpuBusy += r.cpuBusy
		t.p50 = max(t.p50, r.p50)
		t.p99 = max(t.p99, r.p99)
	}
	base := total[baseServer(cfg.servers)]
	w := tabwriter.NewWriter(cfg.out, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "server\tround\tconns\tmsg size\tmsgs/s\tp50 us\tp99 us\tserver CPU%\tgen CPU%\tother CPU%\tserver CPU us/msg\tsched us/msg\tratio vs C\t")
	row := func(r *result, round string) {
		ratio := "-"
		if base != nil {
			ratio = fmt.Sprintf("%.3f", r.usPerMsg()/base.usPerMsg())
		}
		other := "-"
		if r.cpuBusy > 0 {
			other = fmt.Sprintf("%.1f", r.otherPct())
			if r.noisy() {
				other += " !"
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%.0f\t%d\t%d\t%.1f\t%.1f\t%s\t%.3f\t%.3f\t%s\t\n",
			r.server, round, cfg.conns, cfg.size, float64(r.msgs)/r.wall.Seconds(),
			r.p50.Microseconds(), r.p99.Microseconds(),
			100*r.cpu.Seconds()/r.wall.Seconds(), 100*r.genCPU.Seconds()/r.wall.Seconds(), other,
			r.usPerMsg(), float64(r.sched.Microseconds())/float64(r.msgs), ratio)
	}
	for i := range results {
		row(&results[i], strconv.Itoa(results[i].round))
	}
	seen := map[string]bool{}
	for _, name := range cfg.servers {
		if !seen[name] {
			seen[name] = true
			row(total[name], "all")
		}
	}
	w.Flush()
	fmt.Fprintf(cfg.out, "server CPU%%: the server's utime+stime over wall time; other CPU%%: the rest of its CPU's busy time (other processes, steal), a noise gauge (! above %d%%)\n", noisy)
	fmt.Fprintln(cfg.out, "p50/p99 of 'all' rows: the worst round's; ratio vs C: CPU us/msg over the C server's over all rounds")
	if base == nil {
		return
	}
	// Rounds run minutes apart drift; a server's round against the C round
	// next to it cancels much of that.
	baseName := baseServer(cfg.servers)
	cRound := map[int]*result{}
	best := map[string]float64{}
	for i, r := range results {
		if r.server == baseName {
			cRound[r.round] = &results[i]
		}
		if b, ok := best[r.server]; !ok || r.usPerMsg() < b {
			best[r.server] = r.usPerMsg()
		}
	}
	for _, name := range slices.Compact(slices.Clone(cfg.servers)) {
		if name == baseName {
			continue
		}
		var ratios, quiet []float64
		for _, r := range results {
			if c := cRound[r.round]; r.server == name && c != nil {
				ratios = append(ratios, r.usPerMsg()/c.usPerMsg())
				if !r.noisy() && !c.noisy() {
					quiet = append(quiet, ratios[len(ratios)-1])
				}
			}
		}
		slices.Sort(ratios)
		slices.Sort(quiet)
		fmt.Fprintf(cfg.out, "%s/%s CPU per message: all rounds %.3f; per round %.3f median (%.3f..%.3f); best round vs best round %.3f",
			name, baseName, total[name].usPerMsg()/base.usPerMsg(), median(ratios), ratios[0], ratios[len(ratios)-1], best[name]/best[baseName])
		if len(quiet) > 0 {
			fmt.Fprintf(cfg.out, "; undisturbed round pairs (%d) %.3f median (%.3f..%.3f)\n", len(quiet), median(quiet), quiet[0], quiet[len(quiet)-1])
		} else {
			fmt.Fprintf(cfg.out, "; no undisturbed round pair\n")
		}
	}
}

func median(x []float64) float64 {
	n := len(x)
	if n%2 == 1 {
		return x[n/2]
	}
	return (x[n/2-1] + x[n/2]) / 2
}

// server is a running echo server process.
type server struct {
	cmd       *exec.Cmd
	name      string // its -servers entry
	pid       int
	addr      string
	backend   string      // what the reactor server says it runs on, if it says
	neighbors chan string // the JSON of each "neighbors" line it prints
	gc        *gcTrace    // its stderr, with -neighbors for a Go server
}

// start runs the named server pinned to cpu and waits for its
// "listening on" line.
func start(cfg *config, name, bin, profile string) (*server, error) {
	var args []string
	switch kind(name) {
	case "c", "c-uring", "c-udp":
		args = []string{bin, "127.0.0.1", "0"}
	case "reactor":
		// No -backend: the reactor reads $REACTOR_BACKEND (a NAME@VAR
		// spec sets it; the caller's is removed below), else epoll.
		args = []string{bin, "-model", "reactor", "-loops", strconv.Itoa(cfg.loops), "-network", cfg.proto}
		if profile != "" {
			args = append(args, "-cpuprofile", profile)
		}
	default:
		args = []string{bin, "-model", kind(name), "-network", cfg.proto}
	}
	if cfg.serverCPU >= 0 {
		taskset, err := exec.LookPath("taskset")
		if err != nil {
			return nil, err
		}
		// taskset execs the server in place: the pid is the server's.
		args = append([]string{taskset, "-c", strconv.Itoa(cfg.serverCPU)}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, pinnedEnv+"=") || strings.HasPrefix(kv, "GOMAXPROCS=") || strings.HasPrefix(kv, "REACTOR_BACKEND=")
	})
	if cfg.procs > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", cfg.procs))
	}
	if cfg.neighbors && !slices.Contains(cServers, kind(name)) {
		cmd.Env = append(cmd.Env, "REACTORECHO_NEIGHBORS=1")
	}
	if _, env, ok := strings.Cut(name, "@"); ok {
		cmd.Env = append(cmd.Env, strings.Split(env, "@")...)
	}
	var gc *gcTrace
	if cfg.neighbors && !slices.Contains(cServers, kind(name)) {
		var asked bool
		cmd.Env, asked = withGCTrace(cmd.Env)
		gc = &gcTrace{out: os.Stderr, pass: asked}
		cmd.Stderr = gc
	} else {
		cmd.Stderr = os.Stderr
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid, name: name, neighbors: make(chan string, 4), gc: gc}
	lines := bufio.NewScanner(out)
	found := make(chan string, 1)
	go func() {
		for lines.Scan() {
			if b, ok := strings.CutPrefix(lines.Text(), "backend "); ok {
				s.backend = b // read after found
			}
			if a, ok := strings.CutPrefix(lines.Text(), "listening on "); ok {
				found <- a
				break
			}
		}
		close(found)
		for lines.Scan() {
			if j, ok := strings.CutPrefix(lines.Text(), "neighbors "); ok {
				select {
				case s.neighbors <- j:
				default:
				}
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case a, ok := <-found:
		if !ok {
			s.stop()
			return nil, errors.New("server exited without a listening line")
		}
		s.addr = a
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, errors.New("no listening line within 10s")
	}
	return s, nil
}

// stop ends the server with SIGTERM (SIGKILL after 5s) and waits for it.
func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("server %d ignored SIGTERM for 5s: %v", s.pid, <-done)
	}
}

// measure starts the server, drives the load and reads its CPU time.
func measure(cfg *config, name, bin, profile string) (result, error) {
	r := result{server: name}
	s, err := start(cfg, name, bin, profile)
	if err != nil {
		return r, err
	}
	r.cpusAllow = cpusAllowed(s.pid)
	on := ""
	if s.backend != "" {
		on = ", backend " + s.backend
	}
	fmt.Fprintf(os.Stderr, "  %s: pid %d on CPUs %s, %s%s\n", name, s.pid, r.cpusAllow, s.addr, on)
	var g generator
	if cfg.proto == "udp" {
		g, err = dialUDPLoad(s.addr, cfg.conns, cfg.window, cfg.size, cfg.gso)
	} else if cfg.load == "net" {
		g, err = dialNet(s.addr, cfg.conns, cfg.size)
	} else {
		runtime.LockOSThread() // the generator's thread is pinned (see main)
		g, err = loadgen.Dial(loadgen.Config{Addr: s.addr, Active: cfg.conns, Size: cfg.size, Rate: cfg.rate}, 10*time.Second)
		runtime.UnlockOSThread()
	}
	if err != nil {
		s.stop()
		return r, err
	}
	defer g.Close()
	err = measureLoad(g, cfg, s, &r)
	r.threadsEnd = threads(s.pid)
	g.Close()
	if err2 := s.stop(); err == nil && err2 != nil {
		err = err2
	}
	return r, err
}

// cpuTime returns the utime+stime of process pid, all its threads, from
// /proc/PID/stat, and the sum of its threads' on-CPU time from
// /proc/PID/task/*/schedstat (nanoseconds, a cross-check finer than ticks).
func cpuTime(pid int, clkTck int64) (stat, sched time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: no ')'", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields after the name", pid, len(f))
	}
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	stat = time.Duration((utime + stime) * int64(time.Second) / clkTck)

	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		if f := strings.Fields(string(b)); len(f) > 0 {
			ns, _ := strconv.ParseInt(f[0], 10, 64)
			sched += time.Duration(ns)
		}
	}
	return stat, sched, nil
}

// cpuBusy returns the non-idle time of CPU cpu from /proc/stat (user, nice,
// system, irq, softirq, steal), or -1 if cpu is negative or unreadable.
func cpuBusy(cpu int, clkTck int64) time.Duration {
	if cpu < 0 {
		return -1
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	prefix := fmt.Sprintf("cpu%d ", cpu)
	for line := range strings.Lines(string(b)) {
		rest, ok := strings.CutPrefix(line, prefix)
		if !ok {
			continue
		}
		var ticks int64
		for i, f := range strings.Fields(rest) {
			// user nice system idle iowait irq softirq steal guest guest_nice
			if i == 3 || i == 4 || i >= 8 {
				continue
			}
			n, _ := strconv.ParseInt(f, 10, 64)
			ticks += n
		}
		return time.Duration(ticks * int64(time.Second) / clkTck)
	}
	return -1
}

// taskStat is one thread's on-CPU time and context switches.
type taskStat struct {
	comm        string
	ns          int64
	vol, nonvol int64
}

// taskStats reads every thread of pid from /proc/PID/task.
func taskStats(pid int) map[string]taskStat {
	m := map[string]taskStat{}
	dirs, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	for _, d := range dirs {
		var t taskStat
		comm, _ := os.ReadFile(d + "/comm")
		t.comm = strings.TrimSpace(string(comm))
		if b, err := os.ReadFile(d + "/schedstat"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				t.ns, _ = strconv.ParseInt(f[0], 10, 64)
			}
		}
		b, _ := os.ReadFile(d + "/status")
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				t.vol, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
				t.nonvol, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
		m[filepath.Base(d)] = t
	}
	return m
}

// printTasks prints each thread's CPU time and context switches over the
// measured window, per message.
func printTasks(server string, before, after map[string]taskStat, msgs int64) {
	tids := slices.Sorted(maps.Keys(after))
	slices.SortFunc(tids, func(a, b string) int {
		return int(after[b].ns-before[b].ns) - int(after[a].ns-before[a].ns)
	})
	for _, tid := range tids {
		a, b := after[tid], before[tid]
		if a.ns == b.ns {
			continue
		}
		fmt.Fprintf(os.Stderr, "    %s thread %s (%s): %.3f us/msg on CPU, %d voluntary + %d involuntary context switches (%.4f/msg)\n",
			server, tid, a.comm, float64(a.ns-b.ns)/1e3/float64(msgs), a.vol-b.vol, a.nonvol-b.nonvol,
			float64(a.vol-b.vol+a.nonvol-b.nonvol)/float64(msgs))
	}
}

// selfCPU returns this process's user+system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func cpusAllowed(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func threads(pid int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*", pid))
	return len(tasks)
}

// generator is a load generator: internal/loadgen's, or dialNet's.
type generator interface {
	Run(d time.Duration, measure bool) (loadgen.Result, error)
	Close()
}

// measureLoad runs the closed loop on g, on this goroutine's thread:
// warm-up, then the measured window, bounded by readings of the server's
// CPU time (and, with -neighbors, by the server's neighbors' window).
func measureLoad(g generator, cfg *config, s *server, r *result) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	pid := s.pid
	if _, err := g.Run(cfg.warmup, false); err != nil {
		return err
	}
	watch := cfg.neighbors && !slices.Contains(cServers, kind(s.name))
	if watch {
		s.gc.window(true)
		s.cmd.Process.Signal(syscall.SIGUSR1)
	}
	cpu0, sched0, err := cpuTime(pid, cfg.clkTck)
	if err != nil {
		return err
	}
	busy0 := cpuBusy(cfg.serverCPU, cfg.clkTck)
	tasks0 := taskStats(pid)
	gen0 := selfCPU()
	res, err := g.Run(cfg.duration, true)
	if err != nil {
		return err
	}
	cpu1, sched1, err := cpuTime(pid, cfg.clkTck)
	if err != nil {
		return err
	}
	if watch {
		s.cmd.Process.Signal(syscall.SIGUSR2)
		select {
		case j := <-s.neighbors:
			r.neighbors = new(neighbors.Report)
			if err := json.Unmarshal([]byte(j), r.neighbors); err != nil {
				return fmt.Errorf("the server's neighbors line: %v", err)
			}
		case <-time.After(5 * time.Second):
			return errors.New("the server printed no neighbors line within 5s of SIGUSR2")
		}
		r.gcStops = s.gc.window(false)
	}
	r.wall, r.msgs, r.genCPU = res.Wall, res.Msgs, selfCPU()-gen0
	r.cpu, r.sched = cpu1-cpu0, sched1-sched0
	if busy0 >= 0 {
		r.cpuBusy = cpuBusy(cfg.serverCPU, cfg.clkTck) - busy0
	}
	if cfg.threads {
		printTasks(r.server, tasks0, taskStats(pid), r.msgs)
	}
	if r.msgs == 0 {
		return errors.New("no message echoed")
	}
	if res.Closed > 0 || res.Waiting > 0 {
		return fmt.Errorf("%d connections closed by the server, %d never answered", res.Closed, res.Waiting)
	}
	r.latency = res.Latency
	r.p50, r.p99, r.late = res.P50, res.P99, res.Late
	return nil
}

func usage(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cpumsg: "+format+"\n", args...)
	os.Exit(2)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "cpumsg: %v\n", err)
	os.Exit(1)
}

// withGCTrace returns env with gctrace=1 in its GODEBUG (the last one,
// which is the one the child sees), and whether it was there already.
func withGCTrace(env []string) ([]string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		v, ok := strings.CutPrefix(env[i], "GODEBUG=")
		if !ok {
			continue
		}
		if slices.Contains(strings.Split(v, ","), "gctrace=1") {
			return env, true
		}
		if v != "" {
			v += ","
		}
		env = slices.Clone(env)
		env[i] = "GODEBUG=" + v + "gctrace=1"
		return env, false
	}
	return append(env, "GODEBUG=gctrace=1"), false
}

// quantileOf is the q quantile of sorted x (the nearest rank at or above),
// 0 for none.
func quantileOf(x []float64, q float64) float64 {
	if len(x) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(x)))) - 1
	return x[min(max(i, 0), len(x)-1)]
}
