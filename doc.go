// Package reactor serves many network clients from a few goroutines by
// I/O multiplexing: event loops that ask the kernel which sockets are
// ready (epoll, kqueue, poll or select) and serve only those, or on linux
// hand their reads and writes to io_uring. It is pure Go over
// golang.org/x/sys/unix (no cgo, no assembly).
//
// Two faces serve other code. The Handler API (this package) runs a
// protocol as callbacks on the loops, for streams (Server, Dialer) and
// datagrams (PacketHandler). Package netconn gives net.Listener, net.Conn
// and net.PacketConn values driven by the same loops, so net/http,
// crypto/tls, quic-go and any code written against package net run over
// them unchanged.
//
// Package servers and its subpackages implement the other classic server
// models (iterative, multi-process, thread pool) beside the event loop,
// as reference servers over bare fds; cmd/compare measures them side by
// side. The layers, each using only those below it: package poller (one
// Poller interface, four backends), package fdtable (the table of
// registered fds, whose generation handles travel as poller tokens so that
// an event for a closed and reused fd is never delivered), package conn
// (a non-blocking connection and its write queue), and this package.
//
// # Serving
//
// A Server runs Loops event loops, each one goroutine with its own engine,
// fd table, timer heap and 64 KiB read buffer. The Handler's OnOpen, OnData
// and OnClose run on the connection's loop goroutine and must not block:
// while one runs, that loop serves nobody else. On that goroutine a handler
// may call Conn.Write (which queues and never blocks: the bytes written
// during one callback leave in one write(2) or writev(2) when it returns,
// and what the kernel does not take is flushed when the socket turns
// writable), Conn.Keep and Conn.Need (the unconsumed start of a frame is
// offered again with the next bytes read), Conn.PauseRead and ResumeRead,
// Conn.Close (graceful: flush, then close) and Loop.AfterFunc. From any
// other goroutine use Conn.AsyncWrite, Conn.AsyncClose and Loop.Post. The
// steady-state echo path (wait, read, handler, write) does not allocate,
// nor does a framing handler's whose frames are split across reads.
//
// A Dialer makes outbound connections on a loop with a Handler, driven
// exactly like accepted ones; a HalfCloser decides itself when to close
// after the peer's half-close; a Drainer hears when a write queue has
// drained; Server.OnLoopStart and OnLoopStop make and release per-loop
// state; Server.Stats counts what the loops did, and Server.Logger
// receives the errors no caller can be handed. Built with -tags
// reactorcheck, every method that belongs to the loop goroutine checks
// that it is called there.
//
// Connections are accepted by one acceptor on the first loop, up to 64 per
// wake-up so a connection storm cannot starve established clients, and
// handed to the loops in turn. One acceptor rather than an SO_REUSEPORT
// socket per loop, by default, because it works on every OS and with a
// listening fd the caller owns (ServeFD, as the reference servers and fd
// passing need), it balances connections exactly rather than by a hash of
// the client's address and port, and no client waits in the backlog of a
// busy loop while another loop idles. The price is one Post per connection
// handed to another loop. On linux, Server.ReusePort gives each loop an
// SO_REUSEPORT socket of its own instead, with the same batch limit,
// back-off, MaxConns and Shutdown (docs/measurements.md compares the two).
// When accept fails for want of fds (EMFILE, ENFILE), the acceptor stops
// watching the listener for a back-off of 10ms doubling to 1s: pending
// clients wait in the kernel's backlog instead of the loop spinning, and
// serving resumes as soon as fds are free.
//
// Memory per client is bounded: when a connection's write queue passes the
// high watermark the loop stops reading from it until the queue drains
// below the low watermark, and a Write past the hard cap fails with
// ErrQueueFull. A client that never reads therefore cannot grow the
// server, and, since each ready connection gets one read per turn, a client
// that floods or trickles cannot hold the others up.
//
// Timers (Server.IdleTimeout, Loop.AfterFunc) live in each loop's binary
// heap and set its wait's timeout; there is no goroutine or runtime timer
// per timer, and a read only records the time, so the idle timeout costs
// nothing on the event path. Shutdown stops accepting, lets every
// connection flush its queue, closes them and returns when all loops have
// ended; if its context ends first, what is left is closed at once.
//
// A graceful close (Conn.Close, Shutdown, the idle timeout, a peer's
// half-close) does not end in a bare close(2): closing a TCP socket that
// has unread input makes the kernel reset the connection and discard what
// it has not yet sent, so flushed bytes could still be lost. Unless the
// peer has finished sending, or (linux) nothing is unread and every byte
// is acknowledged, the connection shuts its sending side, then reads and
// drops what the peer still sends until the peer's end of file, for 500 ms
// at most, and only then closes and calls OnClose, as net/http does.
//
// # Datagrams
//
// Server.ListenPacket, Group.ListenPacket, Loop.ListenPacket and
// Loop.DialPacket put udp, udp4, udp6 and unixgram sockets on the loops
// with a PacketHandler: each datagram whole, with its sender (an Addr, a
// comparable value made without allocating), replies queued to an address
// and sent when the callback returns, many per system call on linux
// (recvmmsg, sendmmsg; UDP GSO and GRO where the kernel has them, probed).
// A datagram longer than PacketOptions.MaxDatagram is reported truncated,
// never passed on as whole. The send queue is bounded: a WriteTo past it
// fails with ErrQueueFull, a datagram the kernel refuses goes to OnError,
// and both are counted in Stats.Datagrams.
//
// # The loops and the rest of the program
//
// A loop lives in someone else's program: it never blocks in a system
// call while goroutines it made runnable wait for its P, and it yields to
// the scheduler at least every 100 us while it serves (see Loop). Neither
// engine locks its goroutine to an OS thread, except a loop that asks to
// own one (UringConfig.Dedicated), which gives up this rule.
//
// # The completion engine (io_uring)
//
// With Backend Uring (or REACTOR_BACKEND=uring; linux 5.19 or later with
// io_uring allowed, see UringSupport) a loop waits in an io_uring instead
// of a readiness poller. A readiness loop learns that a socket is ready and
// then reads it, a system call each; the engine hands the kernel the
// reads and writes themselves and collects their results, one
// io_uring_enter per turn for every connection served in it: each reading
// connection has one receive armed into a buffer the loop provides (an
// idle connection holds none; the buffers live outside the Go heap), the
// write queue leaves by send or sendmsg from its own chunks, the listener
// has one accept in flight, and a datagram socket one recvmsg (after its
// completion the loop reads what else is queued with recvmmsg, as a
// readiness loop does). Handlers see
// the same API and the same guarantees. What differs underneath: Writev
// and a Write of 64 KiB or more copy into the queue (the kernel sends from
// it later), Flush submits at once, and a closed connection's fd is closed
// only once its cancelled operations have completed (OnClose is not
// delayed). Watch, a Dialer's connect and Post's wake use an epoll
// instance the ring polls. The ring completes operations cooperatively:
// the kernel's part of a completion (a receive's copy) runs on the thread
// that submitted the operation, at its next return from the kernel,
// whatever that thread runs then. With one P that is usually the thread
// the garbage collector stops the world on, and the runtime's own poll
// of the network as the world restarts does that work inside the pause:
// a pause grows by the kernel's part of the receives that arrived since
// the loop last entered the kernel, work a readiness loop does in its
// next turn. Wake batching
// (UringConfig.BatchWait, linux 6.12) is off unless asked for. A program
// that sets a CPU aside for each loop can have its loops keep their Ps
// and their threads (UringConfig.Dedicated, linux 6.1): fewer CPU cycles
// a message, at the price of everything else on those Ps.
// docs/io_uring.md has the design and its measurements.
//
// # Loops without a Server
//
// NewGroup runs event loops with no Server: Loop.Watch registers any fd
// (an outbound connection, a pipe, a timerfd) with a Watcher whose OnReady
// runs on the loop goroutine, the way mio's SourceFd and gnet's Register
// do; Post, AfterFunc and the Timer methods work the same on such a loop.
// Package netconn is built this way, on this package's exported API only.
//
// # Backends
//
// The backend is DefaultBackend unless Server.Backend (GroupConfig.Backend)
// says otherwise or the environment variable REACTOR_BACKEND names one
// (see BackendEnv for when it is read); an unknown name is an error, never
// a silent fallback, the way libevent honours EVENT_NOEPOLL.
// DefaultBackend is epoll on linux, kqueue on the BSDs and darwin, and
// poll on other unix systems; build with -tags reactor_poll or
// -tags reactor_select to make poll or select the default everywhere. Any
// backend the OS has can also be chosen by value, so one binary can run
// (and one test run can check) all of them.
//
// select and poll hand the kernel the whole set of watched fds on every
// wait, so a wait costs time in proportion to the fds watched; epoll and
// kqueue keep the set in the kernel and a wait costs time in proportion to
// the fds ready (BenchmarkWait in package poller measures it).
//
// # Portability
//
//	OS                           epoll  kqueue  poll  select      default  Wake
//	linux                        yes    -       yes   fd < 1024   epoll    eventfd
//	darwin, freebsd, dragonfly   -      yes     yes   fd < 1024   kqueue   EVFILT_USER
//	netbsd, openbsd              -      yes     yes   fd < 1024   kqueue   self-pipe
//	other unix (solaris, aix)    -      -       yes   -           poll     self-pipe
//
// The test suite runs on linux against epoll, poll, select and the
// completion engine. On the BSDs and darwin the code is compiled and
// vetted (and the tests compiled) for every release, but not run: treat
// kqueue as less proven than epoll.
//
// Guarantees, the same on every backend unless the row above says not:
//
//   - Level-triggered: a ready fd is reported by every wait until it is
//     no longer ready. Edge-triggered interest is available on epoll and
//     kqueue only; asking poll or select for it is an error matching
//     errors.ErrUnsupported, never a silent downgrade.
//   - Spurious readiness is possible: a Wake returns a wait with no events,
//     and an fd reported ready may have been drained meanwhile. Read and
//     write until EAGAIN.
//   - One event per ready fd per wait, read and write readiness combined,
//     and no ready fd starves when more are ready than a wait can return.
//   - A wait interrupted by a signal (EINTR) is retried with the time left.
//
// What a hang-up means on each backend:
//
//   - epoll: EPOLLRDHUP (the peer shut down its sending side or closed) or
//     EPOLLHUP (both directions are down) is reported as HangUp.
//   - kqueue: EV_EOF on the read filter (the peer will send no more) or on
//     the write filter (the peer will read no more) is HangUp.
//   - poll: POLLHUP is HangUp, and on linux POLLRDHUP as well. Elsewhere a
//     peer that only shut down its sending side shows as Readable until the
//     connection is fully closed.
//   - select: no hang-up condition exists. A peer's close shows as
//     Readable (the read returns end of file); an error as Readable and
//     Writable.
//
// On every backend a hang-up or an error also sets the readiness the fd is
// watched for (Readable, and Writable when the connection is down in both
// directions), because the next read or write returns at once.
package reactor
