// Command compare measures the four server models side by side on
// loopback: iterative, multiprocess, threadpool and multiplex (once per
// poller backend the OS has), at several connection counts, with the same
// built-in load generator, and prints one table.
//
//	go run ./cmd/compare [-models LIST] [-backends LIST] [-conns 1,10,100,1000,10000]
//	                     [-idle 0,1000,10000] [-active 50] [-duration 1s] [-size 64]
//	                     [-json] [-svg FILE]
//
// Each server is this binary re-executed as cmd/echoserver (same code,
// same flags), pinned to CPU 0 with GOMAXPROCS=1 where the OS allows
// (linux); the load generator runs on one thread pinned to CPU 1, over the
// reactor's own poller, one message in flight per connection. Per
// measurement: echo throughput (messages/s and MB/s), round-trip latency
// p50, p99 and p999, connection set-up (median time from connect to the
// first echo: process creation, thread hand-off or loop registration),
// the server's peak RSS (its own VmHWM, or the sum over its processes),
// OS threads and processes, and server CPU time per message.
//
// A model that cannot hold a connection count says so in the note column
// rather than disappear: an iterative server serves 1 client and leaves
// the rest waiting; a pool serves as many as it has threads; select
// refuses fds past FD_SETSIZE; a process per client is not started past
// -max-procs processes.
//
// The "waiting sockets" run (-idle) keeps -active clients busy beside 0,
// 1,000 and 10,000 idle ones, per backend: select and poll pay to scan
// every watched socket, epoll and kqueue only for the ready ones.
//
// -json prints one JSON object per measurement on stdout instead of the
// table; -svg FILE draws throughput and p99 against connections. A
// progress line goes to stderr while it runs.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/muxkit/reactor"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/echoserver"
	"github.com/muxkit/reactor/internal/loadgen"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/multiprocess"
)

// envServe makes a re-executed compare run as cmd/echoserver.
const envServe = "REACTOR_COMPARE_SERVE"

func main() {
	if code, ok := asServer(); ok {
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// asServer runs this process as what compare re-executes itself as: a
// multiprocess model's child, or an echo server; ok is false otherwise.
func asServer() (code int, ok bool) {
	multiprocess.ServeChild(servers.Echo)
	if os.Getenv(envServe) == "" {
		return 0, false
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM)
	return echoserver.Run(os.Args[1:], os.Stdout, os.Stderr, sigs), true
}

type config struct {
	models    []string
	backends  []poller.Backend
	conns     []int
	idle      []int
	active    int
	size      int
	duration  time.Duration
	warmup    time.Duration
	dialWait  time.Duration
	workers   int
	maxProcs  int
	jsonOut   bool
	svg       string
	serverCPU int
	clientCPU int
}

var allModels = []string{"iterative", "multiprocess", "threadpool", "multiplex"}

func parse(args []string) (*config, error) {
	fs := flag.NewFlagSet("compare", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	models := fs.String("models", strings.Join(allModels, ","), "models to run, comma-separated")
	var names []string
	for _, b := range reactor.Backends() {
		names = append(names, b.String())
	}
	backends := fs.String("backends", strings.Join(names, ","), "multiplex backends to run, comma-separated (uring: the io_uring completion engine)")
	conns := fs.String("conns", "1,10,100,1000,10000", "connection counts, comma-separated")
	idle := fs.String("idle", "0,1000,10000", "idle connection counts of the waiting-sockets run beside -active busy ones; empty skips it")
	c := &config{}
	fs.IntVar(&c.active, "active", 50, "busy connections in the waiting-sockets run")
	fs.IntVar(&c.size, "size", 64, "message size in bytes")
	fs.DurationVar(&c.duration, "duration", time.Second, "measured time per measurement")
	fs.DurationVar(&c.warmup, "warmup", 250*time.Millisecond, "unmeasured time before each measurement")
	fs.DurationVar(&c.dialWait, "dial-wait", 3*time.Second, "how long to wait for every connection's first echo before measuring anyway")
	fs.IntVar(&c.workers, "workers", 128, "threadpool's pool size")
	fs.IntVar(&c.maxProcs, "max-procs", 1000, "the most processes multiprocess (a process per client) is asked to start")
	fs.BoolVar(&c.jsonOut, "json", false, "print one JSON object per measurement instead of the table")
	fs.StringVar(&c.svg, "svg", "", "write a chart (throughput and p99 against connections) to this SVG file")
	fs.IntVar(&c.serverCPU, "server-cpu", 0, "CPU the servers are pinned to (linux)")
	fs.IntVar(&c.clientCPU, "client-cpu", 1, "CPU the load generator is pinned to (linux)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for _, m := range splitList(*models) {
		if !slices.Contains(allModels, m) {
			return nil, fmt.Errorf("-models: %q: want some of %s", m, strings.Join(allModels, ","))
		}
		c.models = append(c.models, m)
	}
	for _, name := range splitList(*backends) {
		b, err := poller.ParseBackend(name)
		if err != nil || !slices.Contains(reactor.Backends(), b) {
			return nil, fmt.Errorf("-backends: %q: want some of %s", name, strings.Join(names, ","))
		}
		c.backends = append(c.backends, b)
	}
	var err error
	if c.conns, err = intList("-conns", *conns, 1); err != nil {
		return nil, err
	}
	if c.idle, err = intList("-idle", *idle, 0); err != nil {
		return nil, err
	}
	switch {
	case c.size < 1:
		return nil, fmt.Errorf("-size %d: want at least 1", c.size)
	case c.active < 1:
		return nil, fmt.Errorf("-active %d: want at least 1", c.active)
	case c.duration <= 0 || c.warmup < 0 || c.dialWait <= 0:
		return nil, errors.New("-duration and -dial-wait must be positive, -warmup not negative")
	case c.workers < 1:
		return nil, fmt.Errorf("-workers %d: want at least 1", c.workers)
	}
	return c, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func intList(flag, s string, least int) ([]int, error) {
	var out []int
	for _, f := range splitList(s) {
		n, err := strconv.Atoi(f)
		if err != nil || n < least {
			return nil, fmt.Errorf("%s: %q: want integers >= %d", flag, f, least)
		}
		out = append(out, n)
	}
	return out, nil
}

// target is one server configuration.
type target struct {
	model   string
	backend string // multiplex only
	args    []string
}

func (t target) name() string {
	if t.backend != "" {
		return t.model + "/" + t.backend
	}
	return t.model
}

func targets(c *config) []target {
	var ts []target
	for _, m := range c.models {
		switch m {
		case "multiplex":
			for _, b := range c.backends {
				ts = append(ts, target{m, b.String(), []string{"-model", m, "-backend", b.String(), "-loops", "1"}})
			}
		case "threadpool":
			ts = append(ts, target{m, "", []string{"-model", m, "-workers", strconv.Itoa(c.workers)}})
		default:
			ts = append(ts, target{m, "", []string{"-model", m}})
		}
	}
	return ts
}

// Row is one measurement, as printed and as JSON.
type Row struct {
	Run         string  `json:"run"` // "conns" or "waiting"
	Model       string  `json:"model"`
	Backend     string  `json:"backend,omitempty"`
	Conns       int     `json:"conns"` // busy connections
	Idle        int     `json:"idle"`  // idle connections beside them
	Size        int     `json:"size"`
	Served      int     `json:"served"`  // busy connections that got an echo
	Waiting     int     `json:"waiting"` // connections never answered
	Closed      int     `json:"closed"`  // connections the server closed or reset
	MsgsPerSec  float64 `json:"msgs_per_sec"`
	MBPerSec    float64 `json:"mb_per_sec"`
	P50us       float64 `json:"p50_us"`
	P99us       float64 `json:"p99_us"`
	P999us      float64 `json:"p999_us"`
	SetupUs     float64 `json:"setup_us"` // median connect to first echo
	PeakRSS     int64   `json:"peak_rss_bytes"`
	Threads     int     `json:"threads"`
	Procs       int     `json:"processes"`
	CPUusPerMsg float64 `json:"cpu_us_per_msg"`
	Note        string  `json:"note,omitempty"`
}

func run(args []string, stdout, stderr io.Writer) int {
	c, err := parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stderr, "usage: compare [-models LIST] [-backends LIST] [-conns LIST] [-idle LIST] [-active N] [-duration D] [-size N] [-json] [-svg FILE]; see go doc ./cmd/compare")
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(stderr, "compare: %v\n", err)
		return 1
	}
	// This goroutine is the load generator, on a thread of its own.
	runtime.LockOSThread()
	pinned := canPin() && runtime.NumCPU() > max(c.serverCPU, c.clientCPU) && c.serverCPU != c.clientCPU
	if pinned {
		if err := pinThread(c.clientCPU); err != nil {
			pinned = false
		}
	}
	ts := targets(c)
	total := len(ts) * len(c.conns)
	if len(c.idle) > 0 && slices.Contains(c.models, "multiplex") {
		total += len(c.backends) * len(c.idle)
	}
	prog := &progress{w: stderr, total: total}
	var rows []Row
	emit := func(r Row) {
		rows = append(rows, r)
		if c.jsonOut {
			b, _ := json.Marshal(r)
			fmt.Fprintf(stdout, "%s\n", b)
		}
	}
	for _, t := range ts {
		for _, n := range c.conns {
			prog.step(fmt.Sprintf("%s, %d connections", t.name(), n))
			emit(measure(c, exe, t, n, 0, pinned))
		}
	}
	if len(c.idle) > 0 && slices.Contains(c.models, "multiplex") {
		for _, b := range c.backends {
			t := target{"multiplex", b.String(), []string{"-model", "multiplex", "-backend", b.String(), "-loops", "1"}}
			for _, idle := range c.idle {
				prog.step(fmt.Sprintf("waiting sockets: %s, %d busy beside %d idle", t.name(), c.active, idle))
				r := measure(c, exe, t, c.active, idle, pinned)
				r.Run = "waiting"
				emit(r)
			}
		}
	}
	prog.done()
	if !c.jsonOut {
		printTable(stdout, c, rows, pinned)
	}
	if c.svg != "" {
		if err := writeSVG(c.svg, c, rows); err != nil {
			fmt.Fprintf(stderr, "compare: %v\n", err)
			return 1
		}
	}
	return 0
}

// progress keeps one line on stderr up to date.
type progress struct {
	w     io.Writer
	n     int
	total int
	start time.Time
}

func (p *progress) step(what string) {
	if p.n == 0 {
		p.start = time.Now()
	}
	p.n++
	fmt.Fprintf(p.w, "\r\033[K[%d/%d %s] %s", p.n, p.total, time.Since(p.start).Round(time.Second), what)
}

func (p *progress) done() {
	fmt.Fprintf(p.w, "\r\033[K%d measurements in %s\n", p.n, time.Since(p.start).Round(time.Second))
}

// measure starts t's server, puts busy+idle connections on it and
// measures; every failure ends up in the row's note.
func measure(c *config, exe string, t target, busy, idle int, pinned bool) Row {
	r := Row{Run: "conns", Model: t.model, Backend: t.backend, Conns: busy, Idle: idle, Size: c.size}
	if t.model == "multiprocess" && busy+idle > c.maxProcs {
		r.Note = fmt.Sprintf("not run: a process per client would start %d processes (-max-procs %d)", busy+idle, c.maxProcs)
		return r
	}
	srv, err := startServer(exe, t.args, c.serverCPU, pinned)
	if err != nil {
		r.Note = "server did not start: " + err.Error()
		return r
	}
	defer func() {
		if err := srv.stop(); err != nil && r.Note == "" {
			r.Note = err.Error()
		}
	}()
	g, err := loadgen.Dial(loadgen.Config{Addr: srv.addr, Active: busy, Idle: idle, Size: c.size}, c.dialWait)
	if err != nil {
		r.Note = err.Error()
		return r
	}
	defer g.Close()
	if _, err := g.Run(c.warmup, false); err != nil {
		r.Note = err.Error()
		return r
	}
	u0 := snapshot(srv.pid)
	res, err := g.Run(c.duration, true)
	if err != nil {
		r.Note = err.Error()
		return r
	}
	u1 := snapshot(srv.pid)
	r.Served, r.Waiting, r.Closed = res.SetupMeasured, res.Waiting, res.Closed
	r.MsgsPerSec = res.MsgsPerSec()
	r.MBPerSec = float64(res.Bytes) / res.Wall.Seconds() / 1e6
	r.P50us, r.P99us, r.P999us = us(res.P50), us(res.P99), us(res.P999)
	r.SetupUs = us(res.SetupMedian)
	if u1.ok {
		r.PeakRSS = max(u1.peak, u1.rss)
		r.Threads, r.Procs = u1.threads, u1.procs
		if res.Msgs > 0 {
			r.CPUusPerMsg = us(u1.cpu-u0.cpu) / float64(res.Msgs)
		}
	}
	var notes []string
	if r.Waiting > 0 {
		notes = append(notes, fmt.Sprintf("%d of %d connections never answered", r.Waiting, busy+idle))
	}
	if r.Closed > 0 {
		notes = append(notes, fmt.Sprintf("%d closed by the server", r.Closed))
		if t.backend == "select" {
			notes = append(notes, "select: fds past FD_SETSIZE (1024) refused")
		}
	}
	r.Note = strings.Join(notes, "; ")
	return r
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// server is a running echo server process.
type server struct {
	cmd  *exec.Cmd
	pid  int
	addr string
}

// startServer re-executes this binary as cmd/echoserver with args and
// waits for its "listening on" line. With pinned, it is started from a
// thread pinned to cpu, so the server and every thread and process it
// makes inherit that CPU, and it runs with GOMAXPROCS=1.
func startServer(exe string, args []string, cpu int, pinned bool) (*server, error) {
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), envServe+"=1")
	if pinned {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: this thread's affinity is changed, so it exits
		// with the goroutine instead of going back to the scheduler.
		runtime.LockOSThread()
		if pinned {
			if err := pinThread(cpu); err != nil {
				started <- err
				return
			}
		}
		started <- cmd.Start()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, pid: cmd.Process.Pid}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- sc.Text()
		}
		close(line)
		io.Copy(io.Discard, out)
	}()
	select {
	case l, ok := <-line:
		addr, found := strings.CutPrefix(l, "listening on ")
		if !ok || !found {
			s.stop()
			return nil, fmt.Errorf("want a \"listening on\" line, got %q", l)
		}
		s.addr = addr
		return s, nil
	case <-time.After(10 * time.Second):
		s.stop()
		return nil, errors.New("no \"listening on\" line within 10s")
	}
}

// stop sends SIGTERM and waits for a clean exit; after 10 s, SIGKILL.
func (s *server) stop() error {
	s.cmd.Process.Signal(unix.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("server exit: %v", err)
		}
		return nil
	case <-ctx.Done():
		s.cmd.Process.Kill()
		<-done
		return errors.New("server did not exit within 10s of SIGTERM; killed")
	}
}

func printTable(w io.Writer, c *config, rows []Row, pinned bool) {
	fmt.Fprintf(w, "%s/%s, %d CPUs, %s; %d-byte messages, %s per measurement", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), c.size, c.duration)
	if pinned {
		fmt.Fprintf(w, "; server on CPU %d (GOMAXPROCS=1), load on CPU %d", c.serverCPU, c.clientCPU)
	} else {
		fmt.Fprint(w, "; not pinned")
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "model\tconns\tidle\tmsgs/s\tMB/s\tp50\tp99\tp999\tsetup\tpeak RSS\tthreads\tprocs\tCPU/msg\t\tnote")
	last := ""
	for _, r := range rows {
		name := r.Model
		if r.Backend != "" {
			name += "/" + r.Backend
		}
		if r.Run == "waiting" && last != "waiting" {
			fmt.Fprintln(tw, "waiting sockets:\t\t\t\t\t\t\t\t\t\t\t\t\t\t")
		}
		last = r.Run
		if r.MsgsPerSec == 0 && r.Served == 0 {
			fmt.Fprintf(tw, "%s\t%d\t%d\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t\t%s\n", name, r.Conns, r.Idle, r.Note)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%.1f\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%.1f us\t\t%s\n",
			name, r.Conns, r.Idle, human(r.MsgsPerSec), r.MBPerSec,
			dur(r.P50us), dur(r.P99us), dur(r.P999us), dur(r.SetupUs),
			bytesHuman(r.PeakRSS), r.Threads, r.Procs, r.CPUusPerMsg, r.Note)
	}
	tw.Flush()
}

func human(x float64) string {
	switch {
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e3:
		return fmt.Sprintf("%.1fk", x/1e3)
	}
	return fmt.Sprintf("%.0f", x)
}

func dur(us float64) string {
	switch {
	case us <= 0:
		return "-"
	case us >= 1e6:
		return fmt.Sprintf("%.2fs", us/1e6)
	case us >= 1e3:
		return fmt.Sprintf("%.1fms", us/1e3)
	}
	return fmt.Sprintf("%.0fus", us)
}

func bytesHuman(b int64) string {
	switch {
	case b <= 0:
		return "-"
	case b >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", b>>10)
}
