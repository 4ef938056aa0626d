package uring

import (
	"errors"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// newRing makes a ring or skips the test where the kernel refuses one.
func newRing(t *testing.T, entries, flags uint32) *Ring {
	t.Helper()
	r, err := New(entries, flags)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skipf("no io_uring here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// collect waits until n completions are ready and returns them, consumed.
func collect(t *testing.T, r *Ring, n int) []CQE {
	t.Helper()
	var got []CQE
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n {
		if err := r.Wait(uint32(n-len(got)), time.Second, 0); err != nil {
			t.Fatal(err)
		}
		a, b := r.Ready()
		got = append(append(got, a...), b...)
		r.Seen(len(a) + len(b))
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d completions within 5s", len(got), n)
		}
	}
	return got
}

// TestLayout: the structs shared with the kernel have its sizes.
func TestLayout(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"io_uring_sqe", unsafe.Sizeof(SQE{}), 64},
		{"io_uring_cqe", unsafe.Sizeof(CQE{}), 16},
		{"io_uring_params", unsafe.Sizeof(params{}), 120},
		{"io_uring_buf", unsafe.Sizeof(bufEntry{}), 16},
		{"io_uring_buf_reg", unsafe.Sizeof(bufReg{}), 40},
		{"io_uring_getevents_arg", unsafe.Sizeof(getEventsArg{}), 24},
		{"io_uring_probe (256 ops)", unsafe.Sizeof(probeBuf{}), 16 + 8*256},
		{"sqe.user_data offset", unsafe.Offsetof(SQE{}.UserData), 32},
		{"sqe.buf_group offset", unsafe.Offsetof(SQE{}.BufGroup), 40},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestNopRoundTrip: entries submitted come back as completions with their
// user data, across the end of the completion ring (Ready's two slices).
func TestNopRoundTrip(t *testing.T) {
	r := newRing(t, 8, 0)
	next := uint64(1)
	for round := range 10 { // 10 rounds of 7 through a 16-entry CQ: it wraps
		for range 7 {
			e := r.Get()
			if e == nil {
				t.Fatalf("round %d: submission queue full", round)
			}
			e.Opcode, e.UserData = OpNop, next
			next++
		}
		got := collect(t, r, 7)
		for i, c := range got {
			if want := next - 7 + uint64(i); c.UserData != want || c.Res != 0 {
				t.Fatalf("round %d: completion %d = %+v, want user data %d, res 0", round, i, c, want)
			}
		}
	}
}

// TestGetFull: Get returns nil once every entry is handed out and not yet
// taken by the kernel, and entries again after Submit.
func TestGetFull(t *testing.T) {
	r := newRing(t, 4, 0)
	for i := range 4 {
		if e := r.Get(); e == nil {
			t.Fatalf("Get %d of 4: nil", i)
		} else {
			e.Opcode = OpNop
		}
	}
	if r.Get() != nil {
		t.Fatal("Get past the queue's size returned an entry")
	}
	if n, err := r.Submit(); err != nil || n != 4 {
		t.Fatalf("Submit = %d, %v; want 4", n, err)
	}
	if r.Get() == nil {
		t.Fatal("Get after Submit: nil")
	}
	collect(t, r, 4)
}

// TestSendRecv: a send on one end of a socketpair and a receive on the
// other, both through the ring.
func TestSendRecv(t *testing.T) {
	r := newRing(t, 8, 0)
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	msg := []byte("through the ring")
	in := make([]byte, 64)
	rx := r.Get()
	rx.Opcode, rx.Fd, rx.Addr, rx.Len, rx.UserData = OpRecv, int32(fds[1]), uint64(uintptr(unsafe.Pointer(&in[0]))), uint32(len(in)), 2
	tx := r.Get()
	tx.Opcode, tx.Fd, tx.Addr, tx.Len, tx.UserData = OpSend, int32(fds[0]), uint64(uintptr(unsafe.Pointer(&msg[0]))), uint32(len(msg)), 1
	for _, c := range collect(t, r, 2) {
		if c.Res != int32(len(msg)) {
			t.Fatalf("completion %+v: want %d bytes", c, len(msg))
		}
	}
	if string(in[:len(msg)]) != string(msg) {
		t.Fatalf("received %q", in[:len(msg)])
	}
}

// TestMultishotRecvBufRing: one multishot receive delivers several
// messages, each into a buffer the kernel picks from a provided ring, and
// goes on (CqeMore) while buffers are recycled.
func TestMultishotRecvBufRing(t *testing.T) {
	r := newRing(t, 8, 0)
	p, err := r.Probe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Require(OpRecv); err != nil {
		t.Skip(err)
	}
	br, err := r.NewBufRing(7, 4, 128, 4)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer br.Close()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	e := r.Get()
	e.Opcode, e.Fd, e.Flags, e.Ioprio, e.BufGroup, e.UserData = OpRecv, int32(fds[1]), SqeBufferSelect, RecvMultishot, 7, 99
	if _, err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // more messages than buffers: recycling must work
		want := []byte{'m', byte('0' + i)}
		if _, err := unix.Write(fds[0], want); err != nil {
			t.Fatal(err)
		}
		c := collect(t, r, 1)[0]
		if c.UserData != 99 || c.Res != 2 || c.Flags&CqeBuffer == 0 || c.Flags&CqeMore == 0 {
			t.Fatalf("message %d: completion %+v, want 2 bytes in a provided buffer, more to come", i, c)
		}
		bid := uint16(c.Flags >> 16)
		if got := br.Buf(bid, int(c.Res)); string(got) != string(want) {
			t.Fatalf("message %d: buffer %d holds %q, want %q", i, bid, got, want)
		}
		br.Recycle(bid)
		br.Publish()
	}
}

// TestProbe: NOP is supported; an opcode past the kernel's last is not,
// and Require says so with an error matching errors.ErrUnsupported.
func TestProbe(t *testing.T) {
	r := newRing(t, 4, 0)
	p, err := r.Probe()
	if err != nil {
		t.Fatal(err)
	}
	if !p.Supports(OpNop) || p.Require(OpNop, OpSend, OpRecv) != nil {
		t.Fatal("NOP, SEND or RECV reported missing on linux 6.x")
	}
	if err := p.Require(OpNop, 255); !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("Require(255) = %v, want an error matching ErrUnsupported", err)
	}
}

// TestWaitTimeoutAndMinWait: Wait returns at its timeout with what is
// ready, not an error; with a minimum wait (6.12+) a wait for many
// completions returns once the minimum has passed and one is ready.
func TestWaitTimeoutAndMinWait(t *testing.T) {
	r := newRing(t, 4, 0)
	start := time.Now()
	if err := r.Wait(1, 20*time.Millisecond, 0); err != nil {
		t.Fatalf("Wait with nothing submitted: %v", err)
	}
	if d := time.Since(start); d < 15*time.Millisecond {
		t.Fatalf("Wait returned after %v, before its 20ms timeout, with nothing ready", d)
	}
	if r.Features()&FeatMinTimeout == 0 {
		t.Skip("no IORING_FEAT_MIN_TIMEOUT (linux 6.12)")
	}
	e := r.Get()
	e.Opcode = OpNop
	start = time.Now()
	if err := r.Wait(4, 5*time.Second, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a wait for 4 with a 1ms minimum and 1 ready took %v", d)
	}
	if a, b := r.Ready(); len(a)+len(b) != 1 {
		t.Fatalf("%d completions ready, want 1", len(a)+len(b))
	}
}

// TestBadSetup: a setup flag no kernel has is an error matching
// errors.ErrUnsupported, not a silent ring without it.
func TestBadSetup(t *testing.T) {
	newRing(t, 4, 0) // skips where there is no io_uring at all
	r, err := New(4, 1<<30)
	if err == nil {
		r.Close()
		t.Fatal("New with an unknown setup flag succeeded")
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		t.Fatalf("New with an unknown setup flag: %v, want an error matching ErrUnsupported", err)
	}
	if r, err := New(4, SetupSingleIssuer|SetupDeferTaskrun); err != nil {
		t.Logf("single issuer with deferred task running: %v", err)
	} else {
		r.Close()
	}
}
