package reactor

import "sync"

// inbound holds the bytes a handler kept with Keep: b[:len(b)] are kept,
// cap(b) is the room. Buffers come in size classes from 4 KiB to 1 MiB,
// each with a pool shared by every loop, so a connection that keeps a frame
// head now and then holds a buffer only while it does, and a steady stream
// of split frames does not allocate. Past 1 MiB a buffer at least doubles
// when it grows, so a frame that arrives in many reads costs time linear
// in its size: each byte is copied a bounded number of times.
type inbound struct {
	b    []byte
	need int // the frame's length, from Conn.Need: OnData waits for it
}

const (
	inboundMin     = 4 << 10
	inboundClasses = 9 // 4 KiB << 0..8: up to 1 MiB
)

var inboundPools [inboundClasses]sync.Pool

// inboundClass is the smallest class holding n bytes, or inboundClasses if
// none does.
func inboundClass(n int) int {
	k := 0
	for size := inboundMin; size < n && k < inboundClasses; size <<= 1 {
		k++
	}
	return k
}

// newInbound returns an empty buffer with room for at least n bytes.
func newInbound(n int) *inbound {
	k := inboundClass(n)
	if k == inboundClasses {
		return &inbound{b: make([]byte, 0, n)} // larger than any class: not pooled
	}
	if x, _ := inboundPools[k].Get().(*inbound); x != nil {
		return x
	}
	return &inbound{b: make([]byte, 0, inboundMin<<k)}
}

// free gives x back to its pool.
func (x *inbound) free() {
	k := inboundClass(cap(x.b))
	if k < inboundClasses && cap(x.b) == inboundMin<<k {
		x.b, x.need = x.b[:0], 0
		inboundPools[k].Put(x)
	}
}

// add appends p, moving to a larger buffer if x has no room (or is nil),
// and returns the buffer that holds the bytes.
func (x *inbound) add(p []byte) *inbound {
	if x == nil {
		x = newInbound(len(p))
	}
	if len(x.b)+len(p) > cap(x.b) {
		x = x.grow(max(len(x.b)+len(p), 2*cap(x.b)))
	}
	x.b = append(x.b, p...)
	return x
}

// grow moves x's bytes to a buffer with room for n, and returns it.
func (x *inbound) grow(n int) *inbound {
	y := newInbound(n)
	y.b = append(y.b, x.b...)
	y.need = x.need
	x.free()
	return y
}

// keepTail keeps the last k bytes of x and drops the rest, moving to a
// smaller buffer once a large one is mostly idle, and returns the buffer.
func (x *inbound) keepTail(k int) *inbound {
	if k == len(x.b) {
		return x // all of it: nothing moves
	}
	tail := x.b[len(x.b)-k:]
	if cap(x.b) > inboundMin && 4*k < cap(x.b) {
		y := newInbound(k)
		y.b = append(y.b, tail...)
		x.free()
		return y
	}
	x.b = x.b[:copy(x.b, tail)]
	return x
}
