//go:build linux

package reactor_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/poller"
)

// The fd-limit test runs its server in a child process, the test binary
// re-executed with these variables set, so that a low RLIMIT_NOFILE starves
// the server alone and not the test.
const (
	fdLimitChildEnv   = "REACTOR_TEST_FDLIMIT_CHILD"   // set: be the child
	fdLimitBackendEnv = "REACTOR_TEST_FDLIMIT_BACKEND" // the child's backend
	fdLimit           = 128                            // the child's RLIMIT_NOFILE
)

// TestFDLimitChild is the child's role in TestFDLimit, skipped unless the
// parent started it: it lowers RLIMIT_NOFILE to fdLimit, serves echo on
// the backend it is told, prints "listening on ADDR", and serves until its
// stdin is closed.
func TestFDLimitChild(t *testing.T) {
	if os.Getenv(fdLimitChildEnv) == "" {
		t.Skip("the child of TestFDLimit; runs only when it starts it")
	}
	b, err := poller.ParseBackend(os.Getenv(fdLimitBackendEnv))
	if err != nil {
		t.Fatal(err)
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	lim.Cur = fdLimit
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	s := &reactor.Server{Handler: reactor.Echo, Backend: b, Loops: 1}
	if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	fmt.Printf("listening on %s\n", s.Addr())
	io.Copy(io.Discard, os.Stdin) // until the parent closes it
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if err := <-served; err != reactor.ErrServerClosed {
		t.Errorf("Serve: %v", err)
	}
}

// TestFDLimit: a server whose RLIMIT_NOFILE (128) is smaller than its
// clients (200 at once) must not spin on accept while it has no fd to
// accept with, must keep serving the clients it has, and must serve the
// waiting and new clients as soon as fds are free again. On every backend
// (select included: every fd of the child stays below 128).
//
// "Does not spin" can only be observed over a window: the child's CPU time
// (utime+stime from /proc/PID/stat) over one second while saturated must
// stay under half of one CPU. A spinning acceptor (one accept per wake-up
// of a level-triggered, always-readable listener) burns all of one.
func TestFDLimit(t *testing.T) {
	if os.Getenv(fdLimitChildEnv) != "" {
		t.Skip("in the child")
	}
	for _, b := range reactor.TestBackends(t) {
		t.Run(b.String(), func(t *testing.T) { fdLimitServe(t, b) })
	}
}

// fdLimitChild is a running child server.
type fdLimitChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	out   *syncBuffer // the child's stdout after the address line, and stderr
	ended chan error  // Wait's result
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startFDLimitChild starts the child on backend b and waits for its
// address; the child is stopped (or killed) when the test ends.
func startFDLimitChild(t *testing.T, b poller.Backend) *fdLimitChild {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFDLimitChild$", "-test.count=1", "-test.timeout=120s")
	cmd.Env = append(os.Environ(), fdLimitChildEnv+"=1", fdLimitBackendEnv+"="+b.String(), reactor.BackendEnv+"=")
	c := &fdLimitChild{cmd: cmd, out: new(syncBuffer), ended: make(chan error, 1)}
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = c.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addrc := make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n')
		addrc <- line
		io.Copy(c.out, r)
		c.ended <- cmd.Wait()
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case err := <-c.ended:
			if err != nil {
				t.Errorf("child: %v\n%s", err, c.out)
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-c.ended
			t.Errorf("child did not exit within 15s of its stdin closing\n%s", c.out)
		}
	})
	select {
	case line := <-addrc:
		addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening on ")
		if !ok {
			t.Fatalf("child's first line %q, want \"listening on ADDR\"\n%s", line, c.out)
		}
		c.addr = addr
	case <-time.After(15 * time.Second):
		t.Fatalf("child printed no address within 15s\n%s", c.out)
	}
	return c
}

// openFDsOf counts the fds process pid has open.
func openFDsOf(pid int) (int, error) {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	return len(ents), err
}

// cpuTimeOf returns the user+system CPU time process pid has used so far,
// from /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s, the
// USER_HZ every linux architecture but alpha uses).
func cpuTimeOf(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count the fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	var ticks int64
	for _, s := range f[11:13] { // utime, stime
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond, nil
}

// fdLimitEcho sends msg on c and checks the echo, within 10 s.
func fdLimitEcho(c net.Conn, msg string) error {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if string(got) != msg {
		return fmt.Errorf("echo %q, want %q", got, msg)
	}
	return nil
}

func fdLimitServe(t *testing.T, b poller.Backend) {
	child := startFDLimitChild(t, b)
	pid := child.cmd.Process.Pid

	// 200 clients at once: more than the child has fds. The kernel
	// completes every handshake (the backlog holds them); the child
	// accepts until it runs out of fds.
	const clients = 200
	conns := make([]net.Conn, clients)
	for i := range conns {
		c, err := net.DialTimeout("tcp", child.addr, 5*time.Second)
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		conns[i] = c
		defer c.Close()
	}

	// Saturated: every fd below the limit is in use in the child.
	end := time.Now().Add(10 * time.Second)
	for {
		n, err := openFDsOf(pid)
		if err != nil {
			t.Fatal(err)
		}
		if n >= fdLimit {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("child has %d fds open after 10s, want %d (its limit): it did not accept the clients\n%s", n, fdLimit, child.out)
		}
		time.Sleep(10 * time.Millisecond) // polling a condition, with a deadline
	}

	// The window: with clients still waiting in the backlog, the child
	// must be idle, not spinning on the readable listener.
	cpu0, err := cpuTimeOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	time.Sleep(time.Second) // an observation window, not synchronisation
	cpu1, err := cpuTimeOf(pid)
	if err != nil {
		t.Fatal(err)
	}
	window := time.Since(start)
	share := float64(cpu1-cpu0) / float64(window)
	t.Logf("child used %v of CPU in %v while out of fds (%.1f%% of one CPU)", cpu1-cpu0, window.Round(time.Millisecond), 100*share)
	if share > 0.5 {
		t.Fatalf("child used %.0f%% of a CPU while out of fds: spinning on accept", 100*share)
	}

	// It still serves the clients it has: the first ones, accepted first.
	if err := fdLimitEcho(conns[0], "still served"); err != nil {
		t.Fatalf("an accepted client while out of fds: %v", err)
	}

	// Free fds: close 150 clients. Every remaining one, all of them still
	// waiting in the backlog, and new ones are served once the child's
	// back-off ends (at most 1 s).
	const closed = 150
	freed := time.Now()
	for _, c := range conns[:closed] {
		c.Close()
	}
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i, c := range conns[closed:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fdLimitEcho(c, "waited "+strconv.Itoa(i)); err != nil {
				errs <- fmt.Errorf("remaining client %d: %w", closed+i, err)
			}
		}()
	}
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", child.addr, 5*time.Second)
			if err != nil {
				errs <- fmt.Errorf("new client %d: %w", i, err)
				return
			}
			defer c.Close()
			if err := fdLimitEcho(c, "new "+strconv.Itoa(i)); err != nil {
				errs <- fmt.Errorf("new client %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	n, _ := openFDsOf(pid)
	t.Logf("served %d remaining and 20 new clients after freeing fds in %v; child has %d fds open", clients-closed, time.Since(freed).Round(time.Millisecond), n)
}
