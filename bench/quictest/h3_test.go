// Package quictest runs HTTP/3 with quic-go over the reactor's datagram
// face (netconn.ListenPacket) on every backend, and over Go's net beside
// it. It lives in the bench module so that quic-go never enters the
// library's go.mod.
package quictest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/netconn"
)

// TestHTTP3 sends a request with a 256 KiB body to an HTTP/3 server and
// reads it back reversed, both ends over the same kind of socket: Go's
// *net.UDPConn, then the reactor's face on each backend, the io_uring
// engine included. Over the face it also checks that quic-go took its
// full path (the OOB-capable conn it uses for a *net.UDPConn: batched
// reads through SyscallConn, ECN through control messages), which it
// takes only when the conn has every method it looks for.
func TestHTTP3(t *testing.T) {
	t.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	serverTLS, clientTLS := tlsConfigs(t)
	t.Run("net", func(t *testing.T) {
		roundTrip(t, net.ListenPacket, serverTLS, clientTLS)
	})
	for _, b := range reactor.Backends() {
		t.Run(b.String(), func(t *testing.T) {
			g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 2, Backend: b})
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			cfg := netconn.Config{Group: g}
			listen := func(network, addr string) (net.PacketConn, error) {
				pc, err := cfg.ListenPacket(network, addr)
				if err != nil {
					return nil, err
				}
				if _, ok := pc.(quic.OOBCapablePacketConn); !ok {
					t.Fatalf("%T is not a quic.OOBCapablePacketConn", pc)
				}
				return pc, nil
			}
			roundTrip(t, listen, serverTLS, clientTLS)
		})
	}
}

// roundTrip serves HTTP/3 on a conn from listen and makes one request to
// it through a client transport on another, then checks that quic-go
// turned IP_RECVTOS on at both ends, which it does only on its OOB path.
func roundTrip(t *testing.T, listen func(network, addr string) (net.PacketConn, error), serverTLS, clientTLS *tls.Config) {
	t.Helper()
	server, err := listen("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	client, err := listen("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if receivesTOS(t, server) || receivesTOS(t, client) {
		t.Fatal("IP_RECVTOS is on before quic-go ran; it cannot tell which path quic-go took")
	}

	mux := http.NewServeMux()
	mux.HandleFunc("POST /reverse", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for i, j := 0, len(body)-1; i < j; i, j = i+1, j-1 {
			body[i], body[j] = body[j], body[i]
		}
		w.Header().Set("X-Proto", r.Proto)
		w.Write(body)
	})
	srv := &http3.Server{Handler: mux, TLSConfig: serverTLS}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(server) }()

	tr := &quic.Transport{Conn: client}
	h3 := &http3.Transport{
		TLSClientConfig: clientTLS,
		Dial: func(ctx context.Context, addr string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			ua, err := net.ResolveUDPAddr("udp4", addr)
			if err != nil {
				return nil, err
			}
			return tr.DialEarly(ctx, ua, tlsCfg, cfg)
		},
	}

	body := make([]byte, 256<<10)
	rand.Read(body)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "POST", "https://"+server.LocalAddr().String()+"/reverse", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: h3}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Proto") != "HTTP/3.0" {
		t.Fatalf("status %d, proto %q", resp.StatusCode, resp.Header.Get("X-Proto"))
	}
	if len(got) != len(body) {
		t.Fatalf("got %d bytes back, sent %d", len(got), len(body))
	}
	for i := range body {
		if got[i] != body[len(body)-1-i] {
			t.Fatalf("byte %d of the reply differs", i)
		}
	}
	for name, pc := range map[string]net.PacketConn{"server": server, "client": client} {
		if !receivesTOS(t, pc) {
			t.Errorf("%s: IP_RECVTOS is off: quic-go did not take its OOB path", name)
		}
	}

	h3.Close()
	if err := tr.Close(); err != nil {
		t.Errorf("transport close: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("server close: %v", err)
	}
	select {
	case err := <-served:
		if err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, quic.ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("Serve did not return after Close")
	}
}

// receivesTOS reports whether IP_RECVTOS is on for pc's socket; quic-go
// turns it on only on its OOB path.
func receivesTOS(t *testing.T, pc net.PacketConn) bool {
	t.Helper()
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var on int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		on, gerr = unix.GetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVTOS)
	}); err != nil {
		t.Fatal(err)
	}
	if gerr != nil {
		t.Fatal(gerr)
	}
	return on == 1
}

// tlsConfigs returns a server config with a fresh self-signed certificate
// for 127.0.0.1 and a client config that trusts only it.
func tlsConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "reactor quictest"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool}
	return server, client
}
