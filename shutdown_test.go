package reactor

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestShutdownFromHandler: Shutdown called in a handler, on the loop it
// would otherwise wait for, returns nil at once; the shutdown goes on
// (the reply written before it is flushed, the client then reads end of
// file) and Serve returns ErrServerClosed. A second Shutdown from a
// handler returns at once too.
func TestShutdownFromHandler(t *testing.T) {
	for _, b := range testBackends(t) {
		t.Run(b.String(), func(t *testing.T) {
			checkLeaks(t)
			results := make(chan error, 2)
			var s *Server
			s = &Server{Backend: b, Loops: 2, Handler: HandlerFuncs{Data: func(c *Conn, data []byte) {
				c.Write(data)
				results <- s.Shutdown(context.Background())
				results <- s.Shutdown(context.Background())
			}}}
			if err := s.Listen("tcp", "127.0.0.1:0"); err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- s.Serve() }()
			c := dial(t, s.Addr().String())
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			for i := range 2 {
				select {
				case err := <-results:
					if err != nil {
						t.Fatalf("Shutdown %d from a handler: %v, want nil", i+1, err)
					}
				case <-time.After(10 * time.Second):
					t.Fatalf("Shutdown %d from a handler did not return within 10s", i+1)
				}
			}
			got, err := io.ReadAll(c)
			if err != nil || string(got) != "x" {
				t.Fatalf("client read %q, %v; want \"x\" then end of file", got, err)
			}
			select {
			case err := <-served:
				if !errors.Is(err, ErrServerClosed) {
					t.Fatalf("Serve returned %v, want ErrServerClosed", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return within 10s of a Shutdown from a handler")
			}
			// From another goroutine, after the end, Shutdown returns too.
			if err := s.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown after the end: %v", err)
			}
		})
	}
}

// TestGoroutineID: the id read from the stack differs between goroutines
// and is stable within one.
func TestGoroutineID(t *testing.T) {
	a, b := goroutineID(), goroutineID()
	if a == 0 || a != b {
		t.Fatalf("goroutineID twice on one goroutine: %d, %d", a, b)
	}
	other := make(chan uint64)
	go func() { other <- goroutineID() }()
	if o := <-other; o == 0 || o == a {
		t.Fatalf("goroutineID on another goroutine: %d (this one: %d)", o, a)
	}
}
