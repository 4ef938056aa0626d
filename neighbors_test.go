package reactor_test

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/internal/loadgen"
	"github.com/muxkit/reactor/poller"
)

// loadgenEnv, set to a server's address, makes the test binary a load
// generator (see TestMain): 100 connections in a closed loop of 64-byte
// echoes until its standard input closes.
const loadgenEnv = "REACTOR_TEST_LOADGEN"

// serveLoadgen runs the load generator of loadgenEnv, if set, and exits.
func serveLoadgen() {
	addr := os.Getenv(loadgenEnv)
	if addr == "" {
		return
	}
	runtime.LockOSThread()
	g, err := loadgen.Dial(loadgen.Config{Addr: addr, Active: 100, Size: 64}, 10*time.Second)
	if err != nil {
		os.Stdout.WriteString("loadgen: " + err.Error() + "\n")
		os.Exit(1)
	}
	stop := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(stop)
	}()
	os.Stdout.WriteString("ready\n")
	for {
		select {
		case <-stop:
			g.Close()
			os.Exit(0)
		default:
		}
		if _, err := g.Run(50*time.Millisecond, false); err != nil {
			os.Exit(1)
		}
	}
}

// TestNeighborsRunBesideBusyLoop: beside a loop kept busy by 100 clients
// of another process, a goroutine of the same program that sleeps 1 ms at
// a time still runs about as often as it asks, with GOMAXPROCS 1, so that
// the loop and it share the one P. A loop that keeps its P (a raw system
// call) or never enters the scheduler starves it: the completion engine as
// it was, holding its P between completions, let it run 47 times a second
// instead of some 900, 19 ms late at the median. On every backend.
func TestNeighborsRunBesideBusyLoop(t *testing.T) {
	for _, b := range reactor.TestBackends(t) {
		t.Run(b.String(), func(t *testing.T) { neighborsBesideBusyLoop(t, b) })
	}
}

func neighborsBesideBusyLoop(t *testing.T, b poller.Backend) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	s := &reactor.Server{Handler: reactor.Echo, Backend: b, Loops: 1}
	if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	defer func() {
		s.Shutdown(t.Context())
		<-served
	}()

	load := exec.Command(os.Args[0], "-test.run=^$")
	load.Env = append(os.Environ(), loadgenEnv+"="+s.Addr().String())
	stdin, err := load.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := load.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		load.Wait()
	}()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if strings.TrimSpace(line) != "ready" {
		t.Fatalf("load generator: %q", line)
	}

	// The neighbor: 1 ms sleeps for a second, each one's lateness.
	var late []time.Duration
	for end := time.Now().Add(time.Second); time.Now().Before(end); {
		t0 := time.Now()
		time.Sleep(time.Millisecond)
		late = append(late, time.Since(t0)-time.Millisecond)
	}
	slices.Sort(late)
	median := late[len(late)/2]
	echoed := s.Stats().BytesOut / 64
	t.Logf("%d sleeps in 1 s beside %d echoes; lateness median %v, p90 %v, max %v",
		len(late), echoed, median, late[len(late)*9/10], late[len(late)-1])
	if echoed < 1000 {
		t.Fatalf("the loop echoed only %d messages: not busy, the test shows nothing", echoed)
	}
	if len(late) < 150 || median > 5*time.Millisecond {
		t.Errorf("the sleeper ran %d times in 1 s (it asks for about 900), %v late at the median (want >= 150 runs, <= 5 ms)", len(late), median)
	}
}
