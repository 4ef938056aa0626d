package reactor

import (
	"testing"
	"unsafe"
)

// TestConnLayout: a Conn is in the allocator's 128-byte size class, so it
// starts on a 64-byte boundary, and the fields serving one event (ours and
// the first four words of the conn.Conn held by value: fd, limits, pending
// count and queue head; the tail is touched only when a write is queued)
// are within its first 64 bytes: one cache line per event instead of the two or three a Conn of
// another size, or one pointing to its conn.Conn, would cost.
func TestConnLayout(t *testing.T) {
	var c Conn
	size := unsafe.Sizeof(c)
	if size <= 112 || size > 128 {
		t.Errorf("unsafe.Sizeof(Conn{}) = %d, want 113..128 (the 128-byte size class)", size)
	}
	word := unsafe.Sizeof(uintptr(0))
	if end := unsafe.Offsetof(c.sock) + 4*word; end > 64 {
		t.Errorf("conn.Conn's first four words end at byte %d of Conn, want at most 64", end)
	}
	if end := unsafe.Offsetof(c.active) + unsafe.Sizeof(c.active); end > unsafe.Offsetof(c.sock) {
		t.Errorf("Conn's hot fields end at byte %d, after conn.Conn starts (%d)", end, unsafe.Offsetof(c.sock))
	}
}
