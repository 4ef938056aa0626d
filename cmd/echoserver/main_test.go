package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/leakcheck"
	"github.com/muxkit/reactor/internal/servertest"
	"github.com/muxkit/reactor/poller"
	"github.com/muxkit/reactor/servers"
	"github.com/muxkit/reactor/servers/multiprocess"
)

// TestMain is the re-exec hook for the multiprocess model's children, as
// main has it. In the parent it then warms the runtime (leakcheck.Warm)
// before any test counts fds and goroutines: the tests' clients use
// package net, and the multiprocess server watches SIGCHLD.
func TestMain(m *testing.M) {
	multiprocess.ServeChild(servers.Echo)
	leakcheck.Warm()
	os.Exit(m.Run())
}

// output is a writer safe for the goroutine run writes from and the test
// reading it; the first complete line is also sent on line.
type output struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	line chan string
}

func newOutput() *output { return &output{line: make(chan string, 1)} }

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	had := bytes.IndexByte(o.buf.Bytes(), '\n') >= 0
	o.buf.Write(p)
	if i := bytes.IndexByte(o.buf.Bytes(), '\n'); !had && i >= 0 {
		o.line <- string(o.buf.Bytes()[:i])
	}
	return len(p), nil
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// listening waits for the "listening on HOST:PORT" line and returns the
// address.
func listening(t *testing.T, out *output, exited <-chan int) string {
	t.Helper()
	select {
	case line := <-out.line:
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok {
			t.Fatalf("first line %q, want \"listening on HOST:PORT\"", line)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			t.Fatalf("first line %q: %v", line, err)
		}
		return addr
	case code := <-exited:
		t.Fatalf("exited %d before listening; stdout %q", code, out.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("no \"listening on\" line; stdout %q", out.String())
	}
	return ""
}

// echo sends msg on c and checks that it comes back.
func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if err := servertest.Echo(c, []byte(msg)); err != nil {
		t.Fatal(err)
	}
}

// closedByServer checks that the server has closed c: a read sees end of
// file (or a reset), not a timeout.
func closedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("client after the server stopped: read %d bytes, %v; want end of file", n, err)
	}
}

// cases are the models and variants, as command lines.
func cases() [][]string {
	cs := [][]string{
		{"-model", "iterative"},
		{"-model", "multiprocess"},
		{"-model", "multiprocess", "-workers", "2"},
		{"-model", "threadpool", "-workers", "4"},
		{"-model", "threadpool", "-workers", "0"},
		{"-model", "multiplex"},
	}
	for _, b := range reactor.Backends() {
		cs = append(cs, []string{"-model", "multiplex", "-backend", b.String(), "-loops", "2"})
	}
	return cs
}

// TestRun: for every model, run prints exactly one line, "listening on
// HOST:PORT", echoes, and on a signal closes its connected client and
// returns 0 with nothing on stderr.
func TestRun(t *testing.T) {
	for _, args := range cases() {
		t.Run(strings.ReplaceAll(strings.Join(args[1:], " "), "-", ""), func(t *testing.T) {
			leakcheck.Check(t)
			args := append(args, "-addr", "127.0.0.1:0")
			stdout, stderr := newOutput(), newOutput()
			sigs := make(chan os.Signal, 1)
			exited := make(chan int, 1)
			go func() { exited <- run(args, stdout, stderr, sigs) }()
			addr := listening(t, stdout, exited)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			echo(t, c, "hello, "+args[1])
			echo(t, c, strings.Repeat("x", 100<<10))
			sigs <- unix.SIGTERM
			select {
			case code := <-exited:
				if code != 0 {
					t.Fatalf("exit status %d after a signal, want 0; stderr %q", code, stderr.String())
				}
			case <-time.After(20 * time.Second):
				t.Fatal("run did not return after a signal")
			}
			if got, want := stdout.String(), "listening on "+addr+"\n"; got != want {
				t.Errorf("stdout %q, want exactly %q", got, want)
			}
			if got := stderr.String(); got != "" {
				t.Errorf("stderr %q, want nothing", got)
			}
			closedByServer(t, c)
		})
	}
}

// TestRunDatagrams: -network udp (every backend) and unixgram make the
// multiplex model echo every datagram to its sender, print the one line,
// and return 0 on a signal; -network unix serves a stream on a path.
func TestRunDatagrams(t *testing.T) {
	type tc struct {
		name string
		args []string
		dial func(addr string) (net.Conn, error)
	}
	var cases []tc
	for _, b := range reactor.Backends() {
		cases = append(cases, tc{"udp " + b.String(), []string{"-model", "multiplex", "-backend", b.String(), "-network", "udp", "-addr", "127.0.0.1:0"},
			func(addr string) (net.Conn, error) { return net.Dial("udp", addr) }})
	}
	dir := t.TempDir()
	cases = append(cases,
		tc{"unixgram", []string{"-model", "multiplex", "-network", "unixgram", "-addr", filepath.Join(dir, "dgram")},
			func(addr string) (net.Conn, error) {
				return net.DialUnix("unixgram", &net.UnixAddr{Name: filepath.Join(dir, "client"), Net: "unixgram"}, &net.UnixAddr{Name: addr, Net: "unixgram"})
			}},
		tc{"unix stream, threadpool", []string{"-model", "threadpool", "-network", "unix", "-addr", filepath.Join(dir, "stream")},
			func(addr string) (net.Conn, error) { return net.Dial("unix", addr) }},
	)
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, " ", "_"), func(t *testing.T) {
			leakcheck.Check(t)
			stdout, stderr := newOutput(), newOutput()
			sigs := make(chan os.Signal, 1)
			exited := make(chan int, 1)
			go func() { exited <- run(c.args, stdout, stderr, sigs) }()
			var addr string
			select {
			case line := <-stdout.line:
				addr, _ = strings.CutPrefix(line, "listening on ")
			case code := <-exited:
				t.Fatalf("exited %d; stderr %q", code, stderr.String())
			}
			conn, err := c.dial(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(20 * time.Second))
			buf := make([]byte, 2000)
			for _, msg := range []string{"one datagram", strings.Repeat("x", 1200)} {
				conn.Write([]byte(msg))
				n, err := conn.Read(buf)
				if err != nil || string(buf[:n]) != msg {
					t.Fatalf("echo of %d bytes: %d, %v", len(msg), n, err)
				}
			}
			sigs <- unix.SIGTERM
			if code := <-exited; code != 0 {
				t.Fatalf("exit status %d, stderr %q", code, stderr.String())
			}
			if got := stderr.String(); got != "" {
				t.Errorf("stderr %q", got)
			}
		})
	}
}

// missingBackend is a backend this OS lacks, or 0.
func missingBackend() poller.Backend {
	for _, b := range []poller.Backend{poller.Epoll, poller.Kqueue, poller.Poll, poller.Select} {
		if !slices.Contains(poller.Available(), b) {
			return b
		}
	}
	return 0
}

// TestRunBadFlags: every bad flag value returns 2 with exactly one line on
// stderr, naming the command, and nothing on stdout.
func TestRunBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  string // $REACTOR_BACKEND, if set
	}{
		{"no model", nil, ""},
		{"unknown model", []string{"-model", "forking"}, ""},
		{"backend without multiplex", []string{"-model", "iterative", "-backend", "poll"}, ""},
		{"unknown backend", []string{"-model", "multiplex", "-backend", "devpoll"}, ""},
		{"workers -1 threadpool", []string{"-model", "threadpool", "-workers", "-1"}, ""},
		{"workers -1 multiprocess", []string{"-model", "multiprocess", "-workers", "-1"}, ""},
		{"workers not a number", []string{"-model", "threadpool", "-workers", "many"}, ""},
		{"workers with iterative", []string{"-model", "iterative", "-workers", "2"}, ""},
		{"loops -1", []string{"-model", "multiplex", "-loops", "-1"}, ""},
		{"loops with threadpool", []string{"-model", "threadpool", "-loops", "2"}, ""},
		{"unknown flag", []string{"-model", "iterative", "-verbose"}, ""},
		{"extra argument", []string{"-model", "iterative", "extra"}, ""},
		{"addr without port", []string{"-model", "iterative", "-addr", "127.0.0.1"}, ""},
		{"addr bad port", []string{"-model", "iterative", "-addr", "127.0.0.1:99999"}, ""},
		{"bad REACTOR_BACKEND", []string{"-model", "multiplex"}, "bogus"},
		{"unknown network", []string{"-model", "multiplex", "-network", "sctp"}, ""},
		{"udp with threadpool", []string{"-model", "threadpool", "-network", "udp"}, ""},
		{"unixgram with iterative", []string{"-model", "iterative", "-network", "unixgram", "-addr", "/tmp/x"}, ""},
		{"unix without a path", []string{"-model", "multiplex", "-network", "unix"}, ""},
	}
	if b := missingBackend(); b != 0 {
		tests = append(tests, struct {
			name string
			args []string
			env  string
		}{"unavailable backend", []string{"-model", "multiplex", "-backend", b.String()}, ""})
	}
	for _, tc := range tests {
		t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
			if tc.env != "" {
				t.Setenv(reactor.BackendEnv, tc.env)
			}
			leakcheck.Check(t)
			stdout, stderr := newOutput(), newOutput()
			sigs := make(chan os.Signal, 1)
			exited := make(chan int, 1)
			go func() { exited <- run(tc.args, stdout, stderr, sigs) }()
			var code int
			select {
			case code = <-exited:
			case <-time.After(20 * time.Second):
				sigs <- unix.SIGTERM // it started serving: stop it
				<-exited
				t.Fatalf("run %q did not return: it accepted the flags", tc.args)
			}
			errText := stderr.String()
			if code != 2 {
				t.Errorf("run %q = %d, want 2; stderr %q", tc.args, code, errText)
			}
			if strings.Count(errText, "\n") != 1 || !strings.HasSuffix(errText, "\n") || !strings.HasPrefix(errText, "echoserver: ") {
				t.Errorf("run %q: stderr %q, want one line \"echoserver: reason\"", tc.args, errText)
			}
			if got := stdout.String(); got != "" {
				t.Errorf("run %q: stdout %q, want nothing", tc.args, got)
			}
		})
	}
}

// TestBinary builds the command and runs it as a process: for every model,
// SIGTERM with a client connected exits 0 having printed the one line; the
// client sees end of file, and the multiprocess model leaves no child
// process behind.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the command")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	bin := filepath.Join(t.TempDir(), "echoserver")
	if out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range cases()[:6] {
		t.Run(strings.ReplaceAll(strings.Join(args[1:], " "), "-", ""), func(t *testing.T) {
			stdout, stderr := newOutput(), newOutput()
			cmd := exec.Command(bin, args...)
			cmd.Stdout, cmd.Stderr = stdout, stderr
			cmd.WaitDelay = 10 * time.Second // a child left holding stdout would otherwise hang Wait
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			exited := make(chan int, 1)
			go func() {
				err := cmd.Wait()
				waited <- err
				exited <- cmd.ProcessState.ExitCode()
			}()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			addr := listening(t, stdout, exited)
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			echo(t, c, "hello, "+args[1])
			kids := servertest.Children(t, cmd.Process.Pid)
			if args[1] == "multiprocess" && len(kids) == 0 {
				t.Fatal("no child process serves the client")
			}
			if err := cmd.Process.Signal(unix.SIGTERM); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-waited:
				if err != nil {
					t.Fatalf("after SIGTERM: %v; stderr %q", err, stderr.String())
				}
			case <-time.After(30 * time.Second):
				t.Fatal("the server did not exit after SIGTERM")
			}
			if got := stdout.String(); got != "listening on "+addr+"\n" {
				t.Errorf("stdout %q, want the one \"listening on\" line", got)
			}
			closedByServer(t, c)
			for _, kid := range kids {
				if _, err := os.Stat("/proc/" + strconv.Itoa(kid.Pid)); err == nil {
					b, _ := os.ReadFile("/proc/" + strconv.Itoa(kid.Pid) + "/stat")
					t.Errorf("child process %d left behind: %s", kid.Pid, b)
				}
			}
		})
	}
}
