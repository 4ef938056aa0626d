package reactor

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/sock"
	"github.com/muxkit/reactor/poller"
)

// BenchmarkPacketEcho measures one 64-byte datagram round trip over udp4
// loopback to PacketEcho on a one-loop Server, per backend, with 1 and 32
// datagrams in flight; each op is one datagram sent and its echo read.
// Run it with
//
//	go test -run '^$' -bench PacketEcho -benchmem .
//
// The client is one raw blocking socket connected to the server, with
// plain write and read system calls, and allocates nothing in the timed
// loop, so allocs/op is the server's. With inflight=32 it sends 32
// datagrams, then reads the 32 echoes: the loop reads them with a few
// recvmmsg calls and sends the replies with a few sendmmsg (or GSO) calls.
// msgs/s is ops per second of the timed loop; syscalls/msg counts the
// whole process's, the client's two per datagram included.
func BenchmarkPacketEcho(b *testing.B) {
	for _, be := range testBackends(b) {
		for _, inflight := range []int{1, 32} {
			b.Run(fmt.Sprintf("backend=%v/inflight=%d", be, inflight), func(b *testing.B) {
				benchPacketEcho(b, be, inflight)
			})
		}
	}
}

func benchPacketEcho(b *testing.B, be poller.Backend, inflight int) {
	s := &Server{Loops: 1, Backend: be}
	addr, err := s.ListenPacket("udp4", "127.0.0.1:0", PacketEcho, nil)
	if err != nil {
		b.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			b.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != ErrServerClosed {
			b.Errorf("Serve: %v", err)
		}
	})
	fd := dialUDPRaw(b, addr.(*net.UDPAddr))
	var msg, buf [echoMsgSize]byte
	for i := range msg {
		msg[i] = byte('a' + i%26)
	}
	// One wave before the timer: the loop's datagram buffers and the
	// socket's queue have grown to what the timed loop needs.
	if err := packetWaves(fd, msg[:], buf[:], inflight, inflight); err != nil {
		b.Fatal(err)
	}
	report := countSyscalls(b, "syscalls/msg")
	b.ReportAllocs()
	b.ResetTimer()
	err = packetWaves(fd, msg[:], buf[:], inflight, b.N)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	report()
	if in := s.Stats().Datagrams.In; in != int64(b.N+inflight) {
		b.Errorf("Stats.Datagrams.In = %d, want %d", in, b.N+inflight)
	}
}

// dialUDPRaw returns a blocking udp4 socket connected to addr, closed when
// the benchmark ends. A read waits 10 s at most: loopback does not drop
// the few datagrams in flight, so a datagram missing is an error, not a
// hang.
func dialUDPRaw(b *testing.B, addr *net.UDPAddr) int {
	b.Helper()
	fd, _, err := sock.DatagramSocket("udp4", addr.String(), false, false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	if err := unix.SetNonblock(fd, false); err != nil {
		b.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<20)
	unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	return fd
}

// ignoringEINTR calls fn until it is not interrupted: the runtime's
// preemption signal interrupts a blocking read or write.
func ignoringEINTR(fn func() (int, error)) (int, error) {
	for {
		n, err := fn()
		if err != unix.EINTR {
			return n, err
		}
	}
}

// packetWaves sends ops datagrams of msg on the connected socket fd,
// inflight at a time: a wave writes up to inflight datagrams, then reads
// their echoes, each checked. It does not allocate.
func packetWaves(fd int, msg, buf []byte, inflight, ops int) error {
	for done := 0; done < ops; {
		wave := min(inflight, ops-done)
		for range wave {
			if _, err := ignoringEINTR(func() (int, error) { return unix.Write(fd, msg) }); err != nil {
				return err
			}
		}
		for i := range wave {
			n, err := ignoringEINTR(func() (int, error) { return unix.Read(fd, buf) })
			if err != nil {
				return fmt.Errorf("echo %d of a wave of %d, after %d datagrams: %w", i, wave, done, err)
			}
			if !bytes.Equal(buf[:n], msg) {
				return fmt.Errorf("echo of %d bytes, not the %d sent", n, len(msg))
			}
		}
		done += wave
	}
	return nil
}
