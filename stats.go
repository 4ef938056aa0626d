package reactor

import (
	"errors"
	"io"
	"sync/atomic"
)

// Stats counts what loops did, for monitoring: connections and why they
// closed, bytes moved and queued. Server.Stats, Group.Stats and Loop.Stats
// return one; every count is since the loops started, except Open and
// Queued, which are now.
type Stats struct {
	// Open is the connections open now (a Dialer's included from Dial on).
	Open int64
	// Accepted counts connections accepted by a Server and served.
	Accepted int64
	// Refused counts connections accepted and closed at once because
	// MaxConns was reached.
	Refused int64
	// Dialed counts connections started by a Dialer.
	Dialed int64
	// Closed counts closed connections by the reason OnClose got.
	Closed ClosedStats
	// BytesIn and BytesOut count bytes read from and written to
	// connections.
	BytesIn, BytesOut int64
	// Queued is the bytes written but not yet taken by the kernel, in all
	// write queues.
	Queued int64
	// FDExhausted counts accepts that failed for want of file descriptors
	// (EMFILE, ENFILE); after each the listener pauses, 10 ms doubling to
	// 1 s, while clients wait in the kernel's backlog.
	FDExhausted int64
	// StaleEvents counts events dropped because their connection was
	// closed earlier in the same batch (the fd table's generation check).
	StaleEvents int64
	// Datagrams counts the datagram sockets' traffic; their bytes are in
	// BytesIn and BytesOut too.
	Datagrams DatagramStats
}

// DatagramStats counts what datagram sockets (PacketConns) did.
type DatagramStats struct {
	// Open is the datagram sockets open now.
	Open int64
	// In and Out count datagrams received and sent.
	In, Out int64
	// Truncated counts datagrams longer than their socket's
	// MaxDatagram, passed on cut short.
	Truncated int64
	// Dropped counts datagrams written and never sent: refused by a full
	// queue (ErrQueueFull), refused by the kernel, or left queued when
	// their socket closed.
	Dropped int64
	// Errors counts the errors given to OnError.
	Errors int64
}

// ClosedStats counts closed connections by reason.
type ClosedStats struct {
	Local       int64 // Close: reason nil
	Peer        int64 // the peer closed: io.EOF
	Idle        int64 // ErrIdleTimeout
	Shutdown    int64 // ErrServerClosed or ErrLoopClosed
	InboundFull int64 // ErrInboundFull
	Error       int64 // a system call error, or a Dialer's connect failing
}

// add adds o to s.
func (s *Stats) add(o Stats) {
	s.Open += o.Open
	s.Accepted += o.Accepted
	s.Refused += o.Refused
	s.Dialed += o.Dialed
	s.Closed.Local += o.Closed.Local
	s.Closed.Peer += o.Closed.Peer
	s.Closed.Idle += o.Closed.Idle
	s.Closed.Shutdown += o.Closed.Shutdown
	s.Closed.InboundFull += o.Closed.InboundFull
	s.Closed.Error += o.Closed.Error
	s.BytesIn += o.BytesIn
	s.BytesOut += o.BytesOut
	s.Queued += o.Queued
	s.FDExhausted += o.FDExhausted
	s.StaleEvents += o.StaleEvents
	s.Datagrams.Open += o.Datagrams.Open
	s.Datagrams.In += o.Datagrams.In
	s.Datagrams.Out += o.Datagrams.Out
	s.Datagrams.Truncated += o.Datagrams.Truncated
	s.Datagrams.Dropped += o.Datagrams.Dropped
	s.Datagrams.Errors += o.Datagrams.Errors
}

// loopStats is one loop's Stats as counters its goroutine adds to and any
// goroutine reads. The byte counts are added once per turn (see publish),
// so the event path makes no atomic operation per read or write.
type loopStats struct {
	open, accepted, refused, dialed               atomic.Int64
	local, peer, idle, shutdown, inboundFull, err atomic.Int64
	bytesIn, bytesOut, queued, stale              atomic.Int64
	fdExhausted                                   atomic.Int64
	datagramOpen, datagramIn, datagramOut         atomic.Int64
	datagramTruncated, datagramDropped            atomic.Int64
	datagramErrors                                atomic.Int64
}

// closed counts a connection closed with reason.
func (s *loopStats) closed(reason error) {
	s.open.Add(-1)
	switch {
	case reason == nil:
		s.local.Add(1)
	case reason == io.EOF:
		s.peer.Add(1)
	case reason == ErrIdleTimeout:
		s.idle.Add(1)
	case reason == ErrServerClosed || errors.Is(reason, ErrLoopClosed):
		s.shutdown.Add(1)
	case reason == ErrInboundFull:
		s.inboundFull.Add(1)
	default:
		s.err.Add(1)
	}
}

// snapshot reads the counters.
func (s *loopStats) snapshot() Stats {
	return Stats{
		Open: s.open.Load(), Accepted: s.accepted.Load(), Refused: s.refused.Load(), Dialed: s.dialed.Load(),
		Closed: ClosedStats{
			Local: s.local.Load(), Peer: s.peer.Load(), Idle: s.idle.Load(), Shutdown: s.shutdown.Load(),
			InboundFull: s.inboundFull.Load(), Error: s.err.Load(),
		},
		BytesIn: s.bytesIn.Load(), BytesOut: s.bytesOut.Load(), Queued: s.queued.Load(), StaleEvents: s.stale.Load(),
		FDExhausted: s.fdExhausted.Load(),
		Datagrams: DatagramStats{
			Open: s.datagramOpen.Load(), In: s.datagramIn.Load(), Out: s.datagramOut.Load(),
			Truncated: s.datagramTruncated.Load(), Dropped: s.datagramDropped.Load(), Errors: s.datagramErrors.Load(),
		},
	}
}

// publish adds the turn's byte counts to the loop's stats.
func (l *Loop) publish() {
	if l.tin != 0 {
		l.stats.bytesIn.Add(l.tin)
		l.tin = 0
	}
	if l.tout != 0 {
		l.stats.bytesOut.Add(l.tout)
		l.tout = 0
	}
	if l.tqueued != 0 {
		l.stats.queued.Add(l.tqueued)
		l.tqueued = 0
	}
	if l.tdin != 0 {
		l.stats.datagramIn.Add(l.tdin)
		l.tdin = 0
	}
	if l.tdout != 0 {
		l.stats.datagramOut.Add(l.tdout)
		l.tdout = 0
	}
}

// Stats returns the loop's counts; safe from any goroutine. Byte counts
// are brought up to date at the end of each loop turn. It does not
// allocate.
func (l *Loop) Stats() Stats { return l.stats.snapshot() }

// Stats returns the sum of its loops' counts; safe from any goroutine. It
// does not allocate.
func (g *Group) Stats() Stats {
	var s Stats
	for _, l := range g.loops {
		s.add(l.Stats())
	}
	return s
}
