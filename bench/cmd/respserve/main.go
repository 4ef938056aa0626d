// Command respserve is a small Redis-protocol (RESP2) server on the
// reactor's protocol API, written as a user would from its docs: PING,
// ECHO, SET, GET, DEL, EXISTS, and CONFIG GET answered empty (so
// redis-benchmark starts). A bulk string longer than what arrived is
// waited for with Conn.Need, so a large SET costs one parse, not one a
// read. bench/resp.sh measures it against redis-server.
//
//	respserve -addr 127.0.0.1:6380 -backend epoll
//
// It prints "listening on ADDR" once it serves, and stops on SIGINT or
// SIGTERM.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/muxkit/reactor"
	"github.com/muxkit/reactor/poller"
)

// maxBulk is the largest bulk string (a value) a command may carry, as
// redis-server's proto-max-bulk-len is 512 MB.
const maxBulk = 512 << 20

func main() {
	addr := flag.String("addr", "127.0.0.1:6380", "tcp address to serve")
	backend := flag.String("backend", "", "the reactor's backend (default: the best here)")
	loops := flag.Int("loops", 1, "event loops")
	flag.Parse()
	be := poller.Available()[0]
	if *backend != "" {
		var err error
		if be, err = poller.ParseBackend(*backend); err != nil {
			fmt.Fprintln(os.Stderr, "respserve:", err)
			os.Exit(2)
		}
	}
	s := &reactor.Server{Handler: &server{data: map[string][]byte{}}, Loops: *loops, Backend: be, MaxInbound: maxBulk + 1<<20}
	if err := s.Listen("tcp", *addr); err != nil {
		fmt.Fprintln(os.Stderr, "respserve:", err)
		os.Exit(1)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve() }()
	fmt.Printf("listening on %s\n", s.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case err := <-served:
		fmt.Fprintln(os.Stderr, "respserve:", err)
		os.Exit(1)
	case <-sig:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "respserve:", err)
		os.Exit(1)
	}
}

// server is the handler: one store for every loop.
type server struct {
	mu   sync.Mutex
	data map[string][]byte
}

var _ reactor.Handler = (*server)(nil)

func (s *server) OnOpen(*reactor.Conn)         {}
func (s *server) OnClose(*reactor.Conn, error) {}

// OnData runs every whole command in data, and keeps the start of the
// last one if it is not all here (with Need when its size is known).
func (s *server) OnData(c *reactor.Conn, data []byte) {
	var args [][]byte
	for len(data) > 0 {
		var n, need int
		var err error
		args, n, need, err = parse(data, args[:0])
		if err != nil {
			c.Write([]byte("-ERR Protocol error: " + err.Error() + "\r\n"))
			c.Close()
			return
		}
		if n == 0 {
			c.Keep(len(data))
			if need > len(data) {
				c.Need(need)
			}
			return
		}
		s.run(c, args)
		data = data[n:]
	}
}

var (
	errSyntax = errors.New("expected '*' then bulk strings")
	errSize   = errors.New("invalid bulk length")
)

// parse reads one command (an array of bulk strings) from the start of b
// into args. It returns the bytes the command takes, or 0 when it is not
// all here, with need the bytes known to be needed so far (0 if unknown).
func parse(b []byte, args [][]byte) (_ [][]byte, n, need int, err error) {
	if b[0] != '*' {
		return args, 0, 0, errSyntax
	}
	count, p, ok, err := number(b, 1)
	if !ok || err != nil {
		return args, 0, 0, err
	}
	for range count {
		if p >= len(b) {
			return args, 0, 0, nil
		}
		if b[p] != '$' {
			return args, 0, 0, errSyntax
		}
		size, q, ok, err := number(b, p+1)
		if !ok || err != nil {
			return args, 0, 0, err
		}
		if size < 0 || size > maxBulk {
			return args, 0, 0, errSize
		}
		end := q + size + 2
		if end > len(b) {
			return args, 0, end, nil
		}
		args = append(args, b[q:q+size])
		p = end
	}
	return args, p, 0, nil
}

// number parses the decimal at b[i:] up to CRLF, returning it and the
// index after the CRLF; ok is false if the line is not all here.
func number(b []byte, i int) (v, next int, ok bool, err error) {
	end := bytes.Index(b[i:], []byte("\r\n"))
	if end < 0 {
		if len(b)-i > 20 {
			return 0, 0, false, errSize
		}
		return 0, 0, false, nil
	}
	v, err = strconv.Atoi(string(b[i : i+end]))
	if err != nil || v < -1 || v > maxBulk {
		return 0, 0, false, errSize
	}
	return v, i + end + 2, true, nil
}

// run executes one command and queues its reply.
func (s *server) run(c *reactor.Conn, args [][]byte) {
	if len(args) == 0 {
		return
	}
	switch cmd := string(bytes.ToUpper(args[0])); {
	case cmd == "PING" && len(args) == 1:
		c.Write([]byte("+PONG\r\n"))
	case cmd == "ECHO" && len(args) == 2:
		bulk(c, args[1])
	case cmd == "SET" && len(args) == 3:
		v := bytes.Clone(args[2])
		s.mu.Lock()
		s.data[string(args[1])] = v
		s.mu.Unlock()
		c.Write([]byte("+OK\r\n"))
	case cmd == "GET" && len(args) == 2:
		s.mu.Lock()
		v, ok := s.data[string(args[1])]
		s.mu.Unlock()
		if !ok {
			c.Write([]byte("$-1\r\n"))
			return
		}
		bulk(c, v)
	case (cmd == "DEL" || cmd == "EXISTS") && len(args) >= 2:
		n := 0
		s.mu.Lock()
		for _, k := range args[1:] {
			if _, ok := s.data[string(k)]; ok {
				n++
				if cmd == "DEL" {
					delete(s.data, string(k))
				}
			}
		}
		s.mu.Unlock()
		c.Write([]byte(":" + strconv.Itoa(n) + "\r\n"))
	case cmd == "CONFIG":
		c.Write([]byte("*0\r\n"))
	default:
		c.Write([]byte("-ERR unknown command or wrong number of arguments for '" + string(args[0]) + "'\r\n"))
	}
}

// bulk queues v as a bulk string.
func bulk(c *reactor.Conn, v []byte) {
	c.Writev([]byte("$"+strconv.Itoa(len(v))+"\r\n"), v, []byte("\r\n"))
}
