package servers_test

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// acceptQueue is the number of connections waiting in the accept queue of
// the TCP listener at addr: the rx_queue column of its LISTEN row in
// /proc/net/tcp, which for a listener is the accept backlog.
func acceptQueue(addr string) (int, error) {
	ta, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	port := fmt.Sprintf(":%04X", ta.Port)
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local rem st tx_queue:rx_queue ...; st 0A is LISTEN
		if len(f) > 4 && strings.HasSuffix(f[1], port) && f[3] == "0A" {
			_, rx, _ := strings.Cut(f[4], ":")
			n, err := strconv.ParseInt(rx, 16, 64)
			return int(n), err
		}
	}
	return 0, fmt.Errorf("no listener on %s in /proc/net/tcp", addr)
}

// servedBy is the pid of the child process serving the client c: the one
// holding the socket whose peer is c's local address, found by the
// socket's inode in /proc/net/tcp and the children's /proc/PID/fd links.
func servedBy(t *testing.T, c net.Conn) int {
	t.Helper()
	port := fmt.Sprintf(":%04X", c.LocalAddr().(*net.TCPAddr).Port)
	srvPort := fmt.Sprintf(":%04X", c.RemoteAddr().(*net.TCPAddr).Port)
	b, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	inode := ""
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		// sl local rem st queues tr retrnsmt uid timeout inode
		// The server's end: from the server's port to the client's. A
		// closed connection of an earlier test that had the same client
		// port lingers in TIME_WAIT with inode 0: not it.
		if len(f) > 9 && strings.HasSuffix(f[1], srvPort) && strings.HasSuffix(f[2], port) && f[9] != "0" {
			inode = f[9]
		}
	}
	if inode == "" {
		t.Fatal("the server's end of the client's connection is not in /proc/net/tcp")
	}
	want := "socket:[" + inode + "]"
	for _, pid := range children(t) {
		dir := fmt.Sprintf("/proc/%d/fd/", pid)
		fds, _ := os.ReadDir(dir)
		for _, fd := range fds {
			if target, _ := os.Readlink(dir + fd.Name()); target == want {
				return pid
			}
		}
	}
	t.Fatal("no child process holds the client's connection")
	return 0
}
