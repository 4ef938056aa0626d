package reactor_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"net"
	"sync/atomic"
	"time"

	"github.com/muxkit/reactor"
)

// A pipelined line protocol: every "PING <n>" line gets "PONG <n>". OnData
// answers every complete line and keeps the unfinished one with Keep; it
// comes back, followed by the next bytes read, in the next OnData. The
// replies written in one OnData leave in one system call when it returns.
func Example_lineProtocol() {
	srv := &reactor.Server{Loops: 1, Handler: reactor.HandlerFuncs{
		Data: func(c *reactor.Conn, data []byte) {
			for {
				line, rest, ok := bytes.Cut(data, []byte("\n"))
				if !ok {
					break
				}
				if n, ok := bytes.CutPrefix(line, []byte("PING ")); ok {
					c.Write(fmt.Appendf(nil, "PONG %s\n", n))
				} else {
					c.Write([]byte("ERR unknown command\n"))
				}
				data = rest
			}
			if len(data) > 1024 {
				c.Close() // a line this long is no PING
				return
			}
			c.Keep(len(data))
		},
	}}
	if err := srv.Listen("tcp", "127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	go srv.Serve()
	defer srv.Shutdown(context.Background())

	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	// Three requests, the second split across two writes.
	c.Write([]byte("PING 1\nPI"))
	c.Write([]byte("NG 2\nPING 3\n"))
	r := bufio.NewReader(c)
	for range 3 {
		line, _ := r.ReadString('\n')
		fmt.Print(line)
	}
	// Output:
	// PONG 1
	// PONG 2
	// PONG 3
}

// Flow control for a handler whose replies outgrow its requests: it
// stops parsing and pauses reading once its queue passes a mark, keeps
// the requests not yet answered, and resumes when OnDrain says the queue
// has drained; ResumeRead offers the kept requests again first.
func ExampleConn_PauseRead() {
	const mark = 64 << 10
	page := bytes.Repeat([]byte("."), 16<<10) // each reply: 16 KiB
	var most atomic.Int64                     // the longest queue seen
	srv := &reactor.Server{Loops: 1, Handler: reactor.HandlerFuncs{
		Data: func(c *reactor.Conn, data []byte) {
			defer func() { most.Store(max(most.Load(), int64(c.Pending()))) }()
			for c.Pending() < mark {
				line, rest, ok := bytes.Cut(data, []byte("\n"))
				if !ok {
					break
				}
				// Write queues: Pending counts these bytes at once,
				// though they leave only when OnData returns.
				c.Write(line)
				c.Write([]byte(":"))
				c.Write(page)
				c.Write([]byte("\n"))
				data = rest
			}
			if c.Pending() >= mark {
				c.PauseRead()
			}
			c.Keep(len(data))
		},
		Drain: func(c *reactor.Conn) { c.ResumeRead() },
	}}
	if err := srv.Listen("tcp", "127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	go srv.Serve()
	defer srv.Shutdown(context.Background())

	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	var req []byte
	for i := range 1000 { // 16 MB of replies to 4 KB of requests
		req = fmt.Appendf(req, "%d\n", i)
	}
	go c.Write(req)
	r := bufio.NewReaderSize(c, 32<<10)
	replies := 0
	for replies < 1000 {
		if _, err := r.ReadSlice('\n'); err == nil {
			replies++
		} else if err != bufio.ErrBufferFull {
			log.Fatal(err)
		}
	}
	fmt.Println(replies, "replies; queue within a reply of the mark:", most.Load() < mark+int64(len(page))+16)
	// Output:
	// 1000 replies; queue within a reply of the mark: true
}

// frameHandler answers length-prefixed frames (a 4-byte length, then the
// body) with the body's length and a sum of its bytes, in a scratch buffer
// of its loop's, made once per loop by the Server's OnLoopStart. A frame
// that spans many reads is kept with Keep, and Need names its length, so
// OnData sees it once, whole, and the kept buffer is sized once.
type frameHandler struct{}

// The faces frameHandler means to have: a misspelled method fails here,
// instead of being ignored.
var (
	_ reactor.Handler    = frameHandler{}
	_ reactor.HalfCloser = frameHandler{}
)

// loopScratch is one loop's reply buffer: the loop's handlers run one at a
// time on its goroutine, so they share it without a lock.
type loopScratch struct{ reply []byte }

func (frameHandler) OnOpen(*reactor.Conn)         {}
func (frameHandler) OnClose(*reactor.Conn, error) {}

// OnPeerClose: the peer has sent everything; every frame it sent has
// been answered, so close.
func (frameHandler) OnPeerClose(c *reactor.Conn) { c.Close() }

func (frameHandler) OnData(c *reactor.Conn, data []byte) {
	s := c.Loop().Context().(*loopScratch)
	for len(data) >= 4 {
		n := int(binary.BigEndian.Uint32(data))
		if len(data) < 4+n {
			break
		}
		var sum byte
		for _, b := range data[4 : 4+n] {
			sum += b
		}
		s.reply = fmt.Appendf(s.reply[:0], "%d bytes, sum %d\n", n, sum)
		c.Write(s.reply) // copied into the queue
		data = data[4+n:]
	}
	c.Keep(len(data))
	if len(data) >= 4 {
		if err := c.Need(4 + int(binary.BigEndian.Uint32(data))); err != nil {
			c.Close() // longer than MaxInbound allows
		}
	}
}

// A framed protocol with per-loop state: OnLoopStart makes each loop's
// scratch on the loop's goroutine before it serves anything, and a frame
// of a megabyte, arriving in 64 KiB pieces, reaches OnData whole.
func Example_framedProtocol() {
	srv := &reactor.Server{
		Handler:     frameHandler{},
		MaxInbound:  8 << 20,
		OnLoopStart: func(l *reactor.Loop) { l.SetContext(&loopScratch{}) },
	}
	if err := srv.Listen("tcp", "127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	go srv.Serve()
	defer srv.Shutdown(context.Background())

	c, err := net.Dial("tcp", srv.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	frame := binary.BigEndian.AppendUint32(nil, 1<<20)
	frame = append(frame, bytes.Repeat([]byte{3}, 1<<20)...)
	frame = append(frame, 0, 0, 0, 2, 'h', 'i') // and a small one after it
	go func() {
		for len(frame) > 0 {
			n := min(64<<10, len(frame))
			c.Write(frame[:n])
			frame = frame[n:]
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			break
		}
		fmt.Print(line)
	}
	// Output:
	// 1048576 bytes, sum 0
	// 2 bytes, sum 209
}

// An outbound connection on a loop, driven by a Handler like an accepted
// one: what is written before it connects leaves once it has; OnOpen,
// OnData and OnClose follow. Dial runs on the loop goroutine, here through
// Post.
func ExampleDialer() {
	echo := &reactor.Server{Loops: 1, Handler: reactor.Echo}
	if err := echo.Listen("tcp", "127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	go echo.Serve()
	defer echo.Shutdown(context.Background())

	g, err := reactor.NewGroup(reactor.GroupConfig{Loops: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	done := make(chan string, 1)
	d := &reactor.Dialer{Timeout: 5 * time.Second, Handler: reactor.HandlerFuncs{
		Open: func(c *reactor.Conn) { done <- "connected" },
		Data: func(c *reactor.Conn, data []byte) {
			done <- "echoed " + string(data)
			c.Close()
		},
		Close: func(c *reactor.Conn, err error) { done <- fmt.Sprint("closed: ", err) },
	}}
	l := g.Loop(0)
	l.Post(func() {
		c, err := d.Dial(l, "tcp", echo.Addr().String())
		if err != nil {
			done <- err.Error()
			return
		}
		c.Write([]byte("hello")) // sent once connected
	})
	for range 3 {
		fmt.Println(<-done)
	}
	// Output:
	// connected
	// echoed hello
	// closed: <nil>
}
