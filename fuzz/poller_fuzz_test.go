package fuzz

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/poller"
)

// poolSize is the number of socketpairs every input works on.
const poolSize = 8

// Poller operations decoded from the fuzz input. Each starts with two bytes:
// the operation (modulo numPollerOps) and its argument, whose low three bits
// pick the socketpair. pAdd and pModify then take eight bytes of token
// (little-endian), pWrite and pRead one byte of count; bytes missing at the
// end of the input read as zero.
const (
	pAdd    = iota // add pair(arg) with interest(arg) and a token
	pModify        // modify pair(arg) to interest(arg) and a token
	pRemove        // remove pair(arg)
	pWrite         // write 1..64 bytes into the peer of pair(arg)
	pRead          // read up to 1..64 bytes from pair(arg)
	pWait          // Wait(0) and compare with the model
	pWake          // Wake, then Wait(0) and compare with the model
	numPollerOps
)

// interests are the interests an argument byte selects from, by bits 3-4.
var interests = [4]poller.Events{0, poller.Readable, poller.Writable, poller.Readable | poller.Writable}

// pollerOp is one decoded operation.
type pollerOp struct {
	kind  int
	pair  int
	ev    poller.Events // pAdd, pModify
	token uint64        // pAdd, pModify
	n     int           // pWrite, pRead: 1..64
}

func (o pollerOp) String() string {
	name := [...]string{"add", "modify", "remove", "write", "read", "wait", "wake"}[o.kind]
	switch o.kind {
	case pAdd, pModify:
		return fmt.Sprintf("%s(%d, %#x, %v)", name, o.pair, o.token, o.ev)
	case pRemove:
		return fmt.Sprintf("%s(%d)", name, o.pair)
	case pWrite, pRead:
		return fmt.Sprintf("%s(%d, %d)", name, o.pair, o.n)
	}
	return name
}

// decodePollerOps turns the fuzz input into operations.
func decodePollerOps(data []byte) []pollerOp {
	var ops []pollerOp
	take := func(n int) []byte {
		var b [8]byte
		k := copy(b[:n], data)
		data = data[k:]
		return b[:n]
	}
	for len(data) >= 2 {
		hdr := take(2)
		op := pollerOp{kind: int(hdr[0] % numPollerOps), pair: int(hdr[1] % poolSize)}
		switch op.kind {
		case pAdd, pModify:
			op.ev = interests[hdr[1]>>3%4]
			op.token = binary.LittleEndian.Uint64(take(8))
		case pWrite, pRead:
			op.n = 1 + int(take(1)[0]%64)
		}
		ops = append(ops, op)
	}
	return ops
}

// Encoders for the seed corpus, the inverse of decodePollerOps.
func encAdd(pair int, token uint64, interest int) []byte {
	return binary.LittleEndian.AppendUint64([]byte{pAdd, byte(pair | interest<<3)}, token)
}

func encModify(pair int, token uint64, interest int) []byte {
	return binary.LittleEndian.AppendUint64([]byte{pModify, byte(pair | interest<<3)}, token)
}

func encRemove(pair int) []byte   { return []byte{pRemove, byte(pair)} }
func encWrite(pair, n int) []byte { return []byte{pWrite, byte(pair), byte(n - 1)} }
func encRead(pair, n int) []byte  { return []byte{pRead, byte(pair), byte(n - 1)} }
func encWait() []byte             { return []byte{pWait, 0} }
func encWake() []byte             { return []byte{pWake, 0} }
func seqOps(ops ...[]byte) []byte { return slices.Concat(ops...) }

// Indexes into interests, for the encoders.
const (
	iNone = iota
	iR
	iW
	iRW
)

// pairModel is what the model knows of one socketpair.
type pairModel struct {
	registered bool
	token      uint64
	ev         poller.Events
	queued     int // bytes written into b and not yet read from a
}

// socketPool is the fixed set of socketpairs of one input: a[i] may be
// registered, b[i] is its peer.
type socketPool struct {
	a, b [poolSize]int
}

// newSocketPool opens poolSize non-blocking unix stream socketpairs. It uses
// socketpair then SetNonblock, since darwin has no SOCK_NONBLOCK.
func newSocketPool(t *testing.T) *socketPool {
	t.Helper()
	p := &socketPool{}
	for i := range poolSize {
		p.a[i], p.b[i] = -1, -1
	}
	for i := range poolSize {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			p.close()
			t.Fatalf("socketpair: %v", err)
		}
		p.a[i], p.b[i] = fds[0], fds[1]
		for _, fd := range fds {
			if err := unix.SetNonblock(fd, true); err != nil {
				p.close()
				t.Fatalf("SetNonblock(%d): %v", fd, err)
			}
		}
	}
	return p
}

// close closes every fd the pool opened.
func (p *socketPool) close() {
	for i := range poolSize {
		for _, fd := range [2]int{p.a[i], p.b[i]} {
			if fd >= 0 {
				unix.Close(fd)
			}
		}
		p.a[i], p.b[i] = -1, -1
	}
}

// drain reads a[i] until it would block and returns how many bytes it read.
func (p *socketPool) drain(t *testing.T, i int) int {
	t.Helper()
	var buf [256]byte
	total := 0
	for {
		n, err := unix.Read(p.a[i], buf[:])
		if err == unix.EAGAIN {
			return total
		}
		if err != nil || n <= 0 {
			t.Fatalf("drain: read(%d) = %d, %v", p.a[i], n, err)
		}
		total += n
	}
}

// FuzzPollerOps runs a decoded sequence of Add, Modify, Remove, socket reads
// and writes, Wait and Wake against every backend in poller.Available() and
// against a model of level-triggered readiness, and fails when a Wait(0)
// reports anything but the model's events or a call returns another error
// than the model predicts.
func FuzzPollerOps(f *testing.F) {
	// Add, make readable, wait; a write-only and an idle registration.
	f.Add(seqOps(
		encAdd(0, 1, iR), encAdd(1, 2, iW), encAdd(2, 3, iR), encWait(),
		encWrite(0, 5), encWait(), encWait(),
	))
	// Modify changes token and interest; interest 0 hides the data.
	f.Add(seqOps(
		encAdd(3, 10, iR), encWrite(3, 1), encWait(),
		encModify(3, 20, iW), encWait(),
		encModify(3, 30, iNone), encWait(),
		encModify(3, 1<<63|0xdeadbeef, iRW), encWait(),
		encModify(4, 5, iR), encWait(),
	))
	// Remove, remove again, re-add with a new token; duplicate Add.
	f.Add(seqOps(
		encAdd(5, 1, iR), encAdd(6, 2, iR), encWrite(5, 3), encWrite(6, 4),
		encRemove(5), encWait(), encRemove(5), encAdd(5, 3, iR), encAdd(5, 4, iW),
		encWait(), encRemove(6), encRemove(5), encWait(),
	))
	// Interest 0: registered, never reported, still a duplicate for Add.
	f.Add(seqOps(
		encAdd(7, ^uint64(0), iNone), encWrite(7, 64), encWait(), encAdd(7, 0, iR),
		encModify(7, 0, iNone), encWait(), encRemove(7), encWait(),
	))
	// Reads draining the data, partly then fully, then reading empty.
	f.Add(seqOps(
		encAdd(1, 7, iRW), encWrite(1, 10), encWait(), encRead(1, 4), encWait(),
		encRead(1, 64), encWait(), encRead(1, 1), encWrite(1, 1), encWait(), encRead(1, 1), encWait(),
	))
	// Wake before and between Waits adds no events.
	f.Add(seqOps(
		encWake(), encWait(), encAdd(2, 9, iR), encWrite(2, 2), encWake(), encWake(),
		encWait(), encRead(2, 2), encWake(),
	))
	// The whole pool registered and ready, then removed one by one.
	var all []byte
	for i := range poolSize {
		all = seqOps(all, encAdd(i, uint64(100+i), iRW), encWrite(i, i+1))
	}
	all = seqOps(all, encWait(), encWait())
	for i := range poolSize {
		all = seqOps(all, encRemove(i), encWait())
	}
	f.Add(all)
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		ops := decodePollerOps(data)
		pool := newSocketPool(t)
		defer pool.close()
		for _, b := range poller.Available() {
			queued := runPollerOps(t, b, pool, ops)
			// Reset the pool for the next backend, checking the model's
			// byte count on the way.
			for i := range poolSize {
				if n := pool.drain(t, i); n != queued[i] {
					t.Fatalf("%v: pair %d held %d bytes at the end, model says %d", b, i, n, queued[i])
				}
			}
		}
	})
}

// runPollerOps runs ops on a new Poller of backend b over pool and returns
// the bytes the model says are left queued in each a[i].
func runPollerOps(t *testing.T, b poller.Backend, pool *socketPool, ops []pollerOp) (queued [poolSize]int) {
	p, err := poller.New(b)
	if err != nil {
		t.Fatalf("New(%v): %v", b, err)
	}
	defer p.Close() // after a failure; the normal path closes it below

	var model [poolSize]pairModel
	events := make([]poller.Event, poolSize)
	var buf [64]byte

	checkErr := func(step int, op pollerOp, err, want error) {
		t.Helper()
		if want == nil && err != nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("%v: step %d: %v: got error %v, want %v", b, step, op, err, want)
		}
	}
	checkWait := func(step int, what string) {
		t.Helper()
		want := make([]poller.Event, 0, poolSize)
		for i, m := range model {
			var ev poller.Events
			if m.ev&poller.Readable != 0 && m.queued > 0 {
				ev |= poller.Readable
			}
			if m.ev&poller.Writable != 0 {
				ev |= poller.Writable
			}
			if m.registered && ev != 0 {
				want = append(want, poller.Event{Fd: pool.a[i], Token: m.token, Events: ev})
			}
		}
		byFD := func(x, y poller.Event) int { return x.Fd - y.Fd }
		slices.SortFunc(want, byFD)
		n, err := p.Wait(events, 0)
		if err != nil {
			t.Fatalf("%v: step %d: %s: Wait: %v", b, step, what, err)
		}
		got := events[:n]
		slices.SortFunc(got, byFD)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%v: step %d: %s: Wait(0) disagrees with the model (-want +got):\n%s", b, step, what, diff)
		}
	}

	for step, op := range ops {
		m := &model[op.pair]
		a := pool.a[op.pair]
		switch op.kind {
		case pAdd:
			var want error
			if m.registered {
				want = poller.ErrRegistered
			}
			checkErr(step, op, p.Add(a, op.token, op.ev), want)
			if want == nil {
				m.registered, m.token, m.ev = true, op.token, op.ev
			}
		case pModify:
			var want error
			if !m.registered {
				want = poller.ErrNotRegistered
			}
			checkErr(step, op, p.Modify(a, op.token, op.ev), want)
			if want == nil {
				m.token, m.ev = op.token, op.ev
			}
		case pRemove:
			var want error
			if !m.registered {
				want = poller.ErrNotRegistered
			}
			checkErr(step, op, p.Remove(a), want)
			*m = pairModel{queued: m.queued}
		case pWrite:
			// A full socket buffer (many small writes on a small-buffered
			// OS) is fine: the model counts what the kernel took.
			n, err := unix.Write(pool.b[op.pair], buf[:op.n])
			switch {
			case err == unix.EAGAIN:
			case err != nil || n <= 0 || n > op.n:
				t.Fatalf("%v: step %d: %v: write = %d, %v", b, step, op, n, err)
			default:
				m.queued += n
			}
		case pRead:
			n, err := unix.Read(a, buf[:op.n])
			switch {
			case m.queued == 0:
				if err != unix.EAGAIN {
					t.Fatalf("%v: step %d: %v: read of an empty socket = %d, %v; want EAGAIN", b, step, op, n, err)
				}
			case err != nil || n <= 0 || n > min(op.n, m.queued):
				t.Fatalf("%v: step %d: %v: read = %d, %v with %d bytes queued", b, step, op, n, err, m.queued)
			default:
				m.queued -= n
			}
		case pWait:
			checkWait(step, op.String())
		case pWake:
			if err := p.Wake(); err != nil {
				t.Fatalf("%v: step %d: Wake: %v", b, step, err)
			}
			checkWait(step, "Wait after Wake")
		}
	}
	checkWait(len(ops), "final")

	if err := p.Close(); err != nil {
		t.Fatalf("%v: Close: %v", b, err)
	}
	if n, err := p.Wait(events, 0); !errors.Is(err, poller.ErrClosed) || n != 0 {
		t.Fatalf("%v: Wait after Close = %d, %v; want 0, ErrClosed", b, n, err)
	}
	if err := p.Wake(); !errors.Is(err, poller.ErrClosed) {
		t.Fatalf("%v: Wake after Close = %v; want ErrClosed", b, err)
	}
	for i := range poolSize {
		queued[i] = model[i].queued
	}
	return queued
}
