// Command httpface serves net/http over a listener from package netconn
// (the reactor's net.Conn face) or from package net, so that HTTP load
// generators (wrk for HTTP/1.1, h2load for HTTP/2) can compare the two.
// It prints "listening on ADDR" once ready and serves until SIGINT or
// SIGTERM. Every response is the 13-byte body "hello, world\n".
//
//	go run ./cmd/httpface -face netconn -tls   # HTTP/2 over TLS (ALPN h2)
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/netconn"
)

func main() {
	face := flag.String("face", "netconn", "netconn or net")
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	useTLS := flag.Bool("tls", false, "serve TLS with a self-signed certificate (HTTP/2 by ALPN)")
	loops := flag.Int("loops", 0, "netconn: loops (0: GOMAXPROCS)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to `file` at exit")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "httpface:", err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}

	var ln net.Listener
	var err error
	switch *face {
	case "net":
		ln, err = net.Listen("tcp", *addr)
	case "netconn":
		var g *reactor.Group
		if g, err = reactor.NewGroup(reactor.GroupConfig{Loops: *loops}); err == nil {
			ln, err = netconn.Config{Group: g}.Listen("tcp", *addr)
		}
	default:
		err = fmt.Errorf("-face %q: want netconn or net", *face)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "httpface:", err)
		os.Exit(2)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello, world\n")
	})}
	if *useTLS {
		cert, err := selfSigned()
		if err != nil {
			fmt.Fprintln(os.Stderr, "httpface:", err)
			os.Exit(1)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	if *useTLS {
		err = srv.ServeTLS(ln, "", "")
	} else {
		err = srv.Serve(ln)
	}
	if err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "httpface:", err)
		os.Exit(1)
	}
	<-shut
}

// selfSigned makes a certificate for 127.0.0.1 and localhost.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "httpface"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
