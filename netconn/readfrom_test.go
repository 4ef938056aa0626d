package netconn

import (
	"bytes"
	"io"
	"testing"
	"time"
)

// TestReadFrom: io.Copy from one netconn conn to another (ReadFrom, by
// splice on linux) moves every byte in order up to the source's end of
// file; an io.LimitedReader over a conn moves exactly its N and leaves the
// rest readable; any other reader is copied; a source deadline that has
// passed ends it with os.ErrDeadlineExceeded.
func TestReadFrom(t *testing.T) {
	netTest(t, func(t *testing.T, e *netEnv) {
		t.Run("conn", func(t *testing.T) {
			c1, s1 := e.pair(t, "tcp")
			c2, s2 := e.pair(t, "tcp")
			data := randomBytes(3<<20 + 7)
			type result struct {
				n   int64
				err error
			}
			res := make(chan result, 1)
			go func() {
				n, err := io.Copy(s2, s1)
				s2.CloseWrite()
				res <- result{n, err}
			}()
			go func() {
				c1.Write(data)
				c1.CloseWrite()
			}()
			got := within(t, 20*time.Second, "reading the copy", func() []byte {
				b, _ := io.ReadAll(c2)
				return b
			})
			if !bytes.Equal(got, data) {
				t.Fatalf("copied %d bytes, want the %d written, in order", len(got), len(data))
			}
			r := within(t, 5*time.Second, "io.Copy", func() result { return <-res })
			if r.err != nil || r.n != int64(len(data)) {
				t.Fatalf("io.Copy = %d, %v; want %d, nil", r.n, r.err, len(data))
			}
		})
		t.Run("limited", func(t *testing.T) {
			c1, s1 := e.pair(t, "tcp")
			c2, s2 := e.pair(t, "tcp")
			c1.Write([]byte("0123456789"))
			lr := &io.LimitedReader{R: s1, N: 4}
			n, err := s2.ReadFrom(lr)
			if n != 4 || err != nil || lr.N != 0 {
				t.Fatalf("ReadFrom(LimitedReader{N: 4}) = %d, %v, N left %d; want 4, nil, 0", n, err, lr.N)
			}
			got := make([]byte, 4)
			if _, err := io.ReadFull(c2, got); err != nil || string(got) != "0123" {
				t.Fatalf("peer read %q, %v; want \"0123\"", got, err)
			}
			rest := make([]byte, 6)
			if _, err := io.ReadFull(s1, rest); err != nil || string(rest) != "456789" {
				t.Fatalf("source kept %q, %v; want \"456789\"", rest, err)
			}
		})
		t.Run("reader", func(t *testing.T) {
			c, s := e.pair(t, "tcp")
			n, err := s.ReadFrom(bytes.NewReader([]byte("plain")))
			if n != 5 || err != nil {
				t.Fatalf("ReadFrom(bytes.Reader) = %d, %v; want 5, nil", n, err)
			}
			got := make([]byte, 5)
			if _, err := io.ReadFull(c, got); err != nil || string(got) != "plain" {
				t.Fatalf("peer read %q, %v", got, err)
			}
		})
		t.Run("deadline", func(t *testing.T) {
			_, s1 := e.pair(t, "tcp")
			_, s2 := e.pair(t, "tcp")
			s1.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			err := within(t, 5*time.Second, "ReadFrom", func() error { _, err := s2.ReadFrom(s1); return err })
			checkTimeout(t, "ReadFrom past the source's deadline", err)
		})
	})
}
