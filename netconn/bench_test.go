package netconn

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/muxkit/reactor/internal/syscount"
)

// The benchmarks here run one workload over each face in one run, so that
// benchstat (or a look) compares them as ratios:
//
//	go test ./netconn -run '^$' -bench . -count 6 | benchstat -col /face -
//
// Client and server share the process, and so the machine's cores; the
// client is the same for both faces (Go's own), so the differences are the
// server's. Each reports syscalls/op, counted (internal/syscount) across
// the whole process, client included, where the kernel lets a process
// count its system calls.

// faces lists the listeners compared.
var faces = []struct {
	name   string
	listen func(network, address string) (net.Listener, error)
}{
	{"netconn", Listen},
	{"net", net.Listen},
}

// countSyscalls starts counting for b and reports syscalls/op when b ends.
func countSyscalls(b *testing.B) {
	c, err := syscount.Start()
	if errors.Is(err, errors.ErrUnsupported) {
		return
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		b.ReportMetric(float64(c.Count())/float64(b.N), "syscalls/op")
		c.Close()
	})
}

var hello = []byte("hello, world\n")

func helloHandler(w http.ResponseWriter, _ *http.Request) { w.Write(hello) }

// serveHTTP serves h on ln until the benchmark ends.
func serveHTTP(b *testing.B, ln net.Listener, cfg *tls.Config) {
	srv := &http.Server{Handler: http.HandlerFunc(helloHandler), TLSConfig: cfg}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if cfg != nil {
			srv.ServeTLS(ln, "", "")
		} else {
			srv.Serve(ln)
		}
	}()
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		<-done
	})
}

// get runs GET requests from parallel clients until b.N are done.
func get(b *testing.B, client *http.Client, url string) {
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || n != int64(len(hello)) {
				b.Errorf("status %d, %d bytes", resp.StatusCode, n)
				return
			}
		}
	})
}

// BenchmarkHTTP1 is net/http, HTTP/1.1 with keep-alive, 64 clients.
func BenchmarkHTTP1(b *testing.B) {
	for _, f := range faces {
		b.Run("face="+f.name, func(b *testing.B) {
			ln, err := f.listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			serveHTTP(b, ln, nil)
			tr := &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := "http://" + ln.Addr().String() + "/"
			b.SetParallelism(32) // 64 clients at GOMAXPROCS=2; the transport caps connections at 64
			b.ReportAllocs()
			countSyscalls(b)
			b.ResetTimer()
			get(b, client, url)
		})
	}
}

// BenchmarkHTTP2TLS is net/http, HTTP/2 over TLS (ALPN h2), many streams
// on one connection from Go's client.
func BenchmarkHTTP2TLS(b *testing.B) {
	cert, pool := selfSigned(b)
	for _, f := range faces {
		b.Run("face="+f.name, func(b *testing.B) {
			ln, err := f.listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			serveHTTP(b, ln, &tls.Config{Certificates: []tls.Certificate{cert}})
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			url := "https://" + ln.Addr().String() + "/"
			resp, err := client.Get(url) // handshake before timing
			if err != nil {
				b.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 {
				b.Fatalf("negotiated %s, want HTTP/2", resp.Proto)
			}
			b.SetParallelism(80) // 160 streams at GOMAXPROCS=2
			b.ReportAllocs()
			countSyscalls(b)
			b.ResetTimer()
			get(b, client, url)
		})
	}
}

// BenchmarkEcho1MiB sends 1 MiB and reads it back from an io.Copy echo.
func BenchmarkEcho1MiB(b *testing.B) {
	const size = 1 << 20
	msg := make([]byte, size)
	got := make([]byte, size)
	for _, f := range faces {
		b.Run("face="+f.name, func(b *testing.B) {
			ln, err := f.listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := ln.Accept()
				if err != nil {
					return
				}
				io.Copy(c, c)
				c.Close()
			}()
			defer func() { ln.Close(); wg.Wait() }()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			b.SetBytes(size)
			b.ReportAllocs()
			countSyscalls(b)
			b.ResetTimer()
			for range b.N {
				errc := make(chan error, 1)
				go func() { _, err := c.Write(msg); errc <- err }()
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
				if err := <-errc; err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
