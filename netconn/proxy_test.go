package netconn

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"testing"
	"time"
)

// TestReverseProxyUpgradeCloseWrite: httputil.ReverseProxy, itself served
// over netconn and dialling its backend with netconn, passes a client's
// half-close through an upgraded connection in both directions, which it
// does only if both conns it holds have CloseWrite: the backend reads end
// of file after the client's bytes, answers, and the client reads the
// answer and then end of file. Without CloseWrite the backend would wait
// for more forever.
func TestReverseProxyUpgradeCloseWrite(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		backendLn := e.listen(t, "tcp")
		backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Upgrade") != "echo" {
				http.Error(w, "want Upgrade: echo", http.StatusBadRequest)
				return
			}
			c, rw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if _, ok := c.(*Conn); !ok {
				t.Errorf("backend conn is %T, want *netconn.Conn", c)
			}
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
			got, err := io.ReadAll(rw.Reader) // until the client's end of file, through the proxy
			if err != nil {
				t.Errorf("backend read: %v", err)
				return
			}
			io.WriteString(c, "got "+string(got))
		})}
		go backend.Serve(backendLn)
		defer backend.Close()

		target, _ := url.Parse("http://" + backendLn.Addr().String())
		proxy := httputil.NewSingleHostReverseProxy(target)
		tr := &http.Transport{DialContext: e.cfg.DialContext}
		defer tr.CloseIdleConnections()
		proxy.Transport = tr
		proxyLn := e.listen(t, "tcp")
		front := &http.Server{Handler: proxy}
		go front.Serve(proxyLn)
		defer front.Close()

		c, err := net.Dial("tcp", proxyLn.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("status %d, want 101", resp.StatusCode)
		}
		io.WriteString(c, "hello")
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		rest, err := io.ReadAll(br)
		if err != nil {
			t.Fatalf("client read: %v (the half-close did not go through)", err)
		}
		if got := string(rest); got != "got hello" {
			t.Fatalf("client read %q, want %q", got, "got hello")
		}
	})
}
