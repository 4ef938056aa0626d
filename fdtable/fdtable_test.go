package fdtable

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// entry is one (fd, value) pair as seen through Range or Lookup.
type entry struct {
	FD  int
	Gen uint32
	Val string
}

// entries returns the table's contents in Range order.
func entries(tab *Table[string]) []entry {
	var got []entry
	tab.Range(func(h Handle, v string) bool {
		got = append(got, entry{FD: h.FD(), Gen: h.Gen(), Val: v})
		return true
	})
	return got
}

// mustPut puts fd and fails the test on error.
func mustPut[T any](t *testing.T, tab *Table[T], fd int, v T) Handle {
	t.Helper()
	h, err := tab.Put(fd, v)
	if err != nil {
		t.Fatalf("Put(%d): %v", fd, err)
	}
	return h
}

func TestHandleLayout(t *testing.T) {
	tests := []struct {
		name    string
		fd      int
		gen     uint32
		wantRaw uint64
		wantFD  int
		wantGen uint32
		wantStr string
	}{
		{"fd0/gen0", 0, 0, 1 << 63, 0, 0, "fd=0/gen=0"},
		{"fd5/gen3", 5, 3, 1<<63 | 3<<32 | 5, 5, 3, "fd=5/gen=3"},
		{"max fd", MaxFD, 0, 1<<63 | MaxFD, MaxFD, 0, "fd=2147483647/gen=0"},
		{"max gen", 7, genMask, 1<<63 | genMask<<32 | 7, 7, genMask, "fd=7/gen=2147483647"},
		{"gen wraps at 31 bits", 7, genMask + 1, 1<<63 | 7, 7, 0, "fd=7/gen=0"},
		{"gen bit 31 dropped", 9, 1<<31 | 2, 1<<63 | 2<<32 | 9, 9, 2, "fd=9/gen=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := makeHandle(tt.fd, tt.gen)
			if uint64(h) != tt.wantRaw {
				t.Errorf("raw = %#x, want %#x", uint64(h), tt.wantRaw)
			}
			if !h.Valid() {
				t.Error("Valid() = false, want true")
			}
			if h.FD() != tt.wantFD {
				t.Errorf("FD() = %d, want %d", h.FD(), tt.wantFD)
			}
			if h.Gen() != tt.wantGen {
				t.Errorf("Gen() = %d, want %d", h.Gen(), tt.wantGen)
			}
			if h.String() != tt.wantStr {
				t.Errorf("String() = %q, want %q", h.String(), tt.wantStr)
			}
		})
	}
}

func TestHandleInvalid(t *testing.T) {
	tests := []struct {
		name    string
		h       Handle
		wantStr string
	}{
		{"zero", 0, "invalid(0x0)"},
		{"valid bit cleared", makeHandle(5, 3) &^ validBit, "invalid(0x300000005)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.h.Valid() {
				t.Error("Valid() = true, want false")
			}
			if got := tt.h.String(); got != tt.wantStr {
				t.Errorf("String() = %q, want %q", got, tt.wantStr)
			}
		})
	}
}

func TestErrorMessages(t *testing.T) {
	for _, err := range []error{ErrBadFD, ErrExists, ErrStale} {
		if !strings.HasPrefix(err.Error(), "fdtable: ") {
			t.Errorf("%q lacks the \"fdtable: \" prefix", err)
		}
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		capacity int
		wantCap  int
	}{
		{-5, 0},
		{0, 0},
		{1, 1},
		{100, 100},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.capacity), func(t *testing.T) {
			tab := New[string](tt.capacity)
			if tab.Cap() != tt.wantCap || tab.Len() != 0 {
				t.Errorf("New(%d): Cap() = %d, Len() = %d; want %d, 0", tt.capacity, tab.Cap(), tab.Len(), tt.wantCap)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	tables := []struct {
		name string
		new  func() *Table[string]
	}{
		{"zero", func() *Table[string] { return new(Table[string]) }},
		{"New(0)", func() *Table[string] { return New[string](0) }},
		{"New(64)", func() *Table[string] { return New[string](64) }},
	}
	fds := []int{0, 1, 2, 3, 17, 63, 64, 1000}
	for _, tc := range tables {
		t.Run(tc.name, func(t *testing.T) {
			tab := tc.new()
			handles := map[int]Handle{}
			for i, fd := range fds {
				h := mustPut(t, tab, fd, "v"+strconv.Itoa(fd))
				if !h.Valid() || h.FD() != fd {
					t.Fatalf("Put(%d) = %v, want a valid handle for fd %d", fd, h, fd)
				}
				handles[fd] = h
				if tab.Len() != i+1 {
					t.Fatalf("Len() = %d after %d puts", tab.Len(), i+1)
				}
			}
			for _, fd := range fds {
				want := "v" + strconv.Itoa(fd)
				if v, ok := tab.Get(handles[fd]); !ok || v != want {
					t.Errorf("Get(%v) = %q, %v; want %q, true", handles[fd], v, ok, want)
				}
				h, v, ok := tab.Lookup(fd)
				if !ok || h != handles[fd] || v != want {
					t.Errorf("Lookup(%d) = %v, %q, %v; want %v, %q, true", fd, h, v, ok, handles[fd], want)
				}
			}
			for i, fd := range fds {
				want := "v" + strconv.Itoa(fd)
				v, err := tab.Delete(handles[fd])
				if err != nil || v != want {
					t.Errorf("Delete(%v) = %q, %v; want %q, nil", handles[fd], v, err, want)
				}
				if tab.Len() != len(fds)-i-1 {
					t.Errorf("Len() = %d after %d deletes", tab.Len(), i+1)
				}
				if _, _, ok := tab.Lookup(fd); ok {
					t.Errorf("Lookup(%d) found a deleted fd", fd)
				}
			}
			if got := entries(tab); len(got) != 0 {
				t.Errorf("Range after deleting everything: %v", got)
			}
		})
	}
}

func TestStale(t *testing.T) {
	tests := []struct {
		name string
		// stale returns a handle that must be rejected, after leaving the
		// table with fd 3 present (as "new") or absent.
		stale func(t *testing.T, tab *Table[string]) Handle
		// reused says whether fd 3 is present afterwards with value "new".
		reused bool
	}{
		{"after delete", func(t *testing.T, tab *Table[string]) Handle {
			h := mustPut(t, tab, 3, "old")
			if _, err := tab.Delete(h); err != nil {
				t.Fatal(err)
			}
			return h
		}, false},
		{"after fd reuse", func(t *testing.T, tab *Table[string]) Handle {
			h := mustPut(t, tab, 3, "old")
			if _, err := tab.Delete(h); err != nil {
				t.Fatal(err)
			}
			h2 := mustPut(t, tab, 3, "new")
			if h2 == h {
				t.Fatalf("re-Put of fd 3 returned the old handle %v", h)
			}
			return h
		}, true},
		{"after many reuses", func(t *testing.T, tab *Table[string]) Handle {
			h := mustPut(t, tab, 3, "old")
			cur := h
			for range 100 {
				if _, err := tab.Delete(cur); err != nil {
					t.Fatal(err)
				}
				cur = mustPut(t, tab, 3, "new")
			}
			return h
		}, true},
		{"zero handle", func(t *testing.T, tab *Table[string]) Handle {
			mustPut(t, tab, 3, "new")
			return 0
		}, true},
		{"valid bit cleared", func(t *testing.T, tab *Table[string]) Handle {
			return mustPut(t, tab, 3, "new") &^ validBit
		}, true},
		{"fd beyond the end", func(t *testing.T, tab *Table[string]) Handle {
			mustPut(t, tab, 3, "new")
			return makeHandle(tab.Cap()+10, 0)
		}, true},
		{"fd field above MaxFD", func(t *testing.T, tab *Table[string]) Handle {
			mustPut(t, tab, 3, "new")
			return Handle(validBit | math.MaxUint32)
		}, true},
		{"fd never put", func(t *testing.T, tab *Table[string]) Handle {
			mustPut(t, tab, 3, "new")
			return makeHandle(2, 0)
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := New[string](8)
			h := tt.stale(t, tab)
			lenBefore := tab.Len()
			if v, ok := tab.Get(h); ok || v != "" {
				t.Errorf("Get(%v) = %q, %v; want \"\", false", h, v, ok)
			}
			if v, err := tab.Delete(h); !errors.Is(err, ErrStale) || v != "" {
				t.Errorf("Delete(%v) = %q, %v; want \"\", ErrStale", h, v, err)
			}
			if tab.Len() != lenBefore {
				t.Errorf("Len() = %d after rejected Delete, want %d", tab.Len(), lenBefore)
			}
			var want []entry
			if tt.reused {
				cur, _, _ := tab.Lookup(3)
				want = []entry{{FD: 3, Gen: cur.Gen(), Val: "new"}}
			}
			if diff := cmp.Diff(want, entries(tab)); diff != "" {
				t.Errorf("table contents (-want +got):\n%s", diff)
			}
		})
	}
}

func TestPutBadFD(t *testing.T) {
	maxFD := MaxFD
	// maxFD+1 is computed at run time: on 32-bit ints it wraps to a
	// negative fd, which must be refused just the same.
	fds := []int{-1, -2, math.MinInt, maxFD + 1}
	if strconv.IntSize == 64 {
		// fds that the 32-bit fd field would silently truncate.
		shift := 32
		fds = append(fds, math.MaxInt, 1<<shift, 1<<shift|3)
	}
	for _, fd := range fds {
		t.Run(strconv.Itoa(fd), func(t *testing.T) {
			tab := New[string](4)
			h, err := tab.Put(fd, "x")
			if !errors.Is(err, ErrBadFD) || h != 0 {
				t.Errorf("Put(%d) = %v, %v; want 0, ErrBadFD", fd, h, err)
			}
			if tab.Len() != 0 || tab.Cap() != 4 {
				t.Errorf("after refused Put: Len() = %d, Cap() = %d; want 0, 4", tab.Len(), tab.Cap())
			}
			if _, _, ok := tab.Lookup(fd); ok {
				t.Errorf("Lookup(%d) = true", fd)
			}
		})
	}
}

func TestPutExists(t *testing.T) {
	tab := New[string](4)
	h := mustPut(t, tab, 2, "first")
	h2, err := tab.Put(2, "second")
	if !errors.Is(err, ErrExists) || h2 != 0 {
		t.Fatalf("second Put(2) = %v, %v; want 0, ErrExists", h2, err)
	}
	if v, ok := tab.Get(h); !ok || v != "first" {
		t.Errorf("Get(%v) = %q, %v after refused Put; want \"first\", true", h, v, ok)
	}
	if tab.Len() != 1 {
		t.Errorf("Len() = %d, want 1", tab.Len())
	}
}

func TestGrowth(t *testing.T) {
	tests := []struct {
		name    string
		initial int
		fd      int
		wantCap int // the smallest acceptable Cap after Put(fd)
	}{
		{"zero table", 0, 0, 1},
		{"just past the end doubles", 8, 8, 16},
		{"far past the end reaches fd+1", 8, 1000, 1001},
		{"large table doubles", 1024, 1024, 2048},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := New[string](tt.initial)
			want := map[int]Handle{}
			for fd := range tt.initial {
				want[fd] = mustPut(t, tab, fd, strconv.Itoa(fd))
			}
			want[tt.fd] = mustPut(t, tab, tt.fd, strconv.Itoa(tt.fd))
			if tab.Cap() < tt.wantCap {
				t.Errorf("Cap() = %d after Put(%d), want >= %d", tab.Cap(), tt.fd, tt.wantCap)
			}
			for fd, h := range want {
				if v, ok := tab.Get(h); !ok || v != strconv.Itoa(fd) {
					t.Errorf("Get(%v) = %q, %v after growth", h, v, ok)
				}
			}
			if tab.Len() != len(want) {
				t.Errorf("Len() = %d, want %d", tab.Len(), len(want))
			}
		})
	}
}

func TestGrowthKeepsGenerations(t *testing.T) {
	var tab Table[string]
	h := mustPut(t, &tab, 1, "a")
	if _, err := tab.Delete(h); err != nil {
		t.Fatal(err)
	}
	h1 := mustPut(t, &tab, 1, "b")
	mustPut(t, &tab, 10*tab.Cap(), "grow")
	if _, ok := tab.Get(h); ok {
		t.Errorf("stale handle %v accepted after growth", h)
	}
	if v, ok := tab.Get(h1); !ok || v != "b" {
		t.Errorf("Get(%v) = %q, %v after growth; want \"b\", true", h1, v, ok)
	}
}

func TestGenerationWrap(t *testing.T) {
	tab := New[string](4)
	// Skip the 2^31-1 Put/Delete cycles it takes to get here.
	tab.slots[3].gen = genMask
	hMax := mustPut(t, tab, 3, "last")
	if hMax.Gen() != genMask {
		t.Fatalf("Gen() = %d, want %d", hMax.Gen(), genMask)
	}
	if _, err := tab.Delete(hMax); err != nil {
		t.Fatal(err)
	}
	if tab.slots[3].gen != 0 {
		t.Fatalf("generation after Delete at the limit = %d, want 0", tab.slots[3].gen)
	}
	h0 := mustPut(t, tab, 3, "wrapped")
	if h0.Gen() != 0 || !h0.Valid() || h0.FD() != 3 {
		t.Errorf("handle after wrap = %v, want fd=3/gen=0", h0)
	}
	if _, ok := tab.Get(hMax); ok {
		t.Errorf("handle %v from before the wrap accepted", hMax)
	}
	if v, ok := tab.Get(h0); !ok || v != "wrapped" {
		t.Errorf("Get(%v) = %q, %v; want \"wrapped\", true", h0, v, ok)
	}
}

// TestGenerationABABound pins the documented limit: a handle comes back to
// life only after exactly 2^31 deletes of its fd.
func TestGenerationABABound(t *testing.T) {
	tab := New[string](1)
	h := mustPut(t, tab, 0, "a")
	if _, err := tab.Delete(h); err != nil {
		t.Fatal(err)
	}
	// One delete done; pretend 2^31-2 more Put/Delete cycles happened.
	tab.slots[0].gen = genMask
	if _, ok := tab.Get(mustPut(t, tab, 0, "b")); !ok {
		t.Fatal("current handle rejected")
	}
	cur, _, _ := tab.Lookup(0)
	if _, ok := tab.Get(h); ok {
		t.Fatalf("handle %v accepted after 2^31-1 deletes", h)
	}
	if _, err := tab.Delete(cur); err != nil { // the 2^31-th delete
		t.Fatal(err)
	}
	mustPut(t, tab, 0, "c")
	if v, ok := tab.Get(h); !ok || v != "c" {
		t.Errorf("after exactly 2^31 deletes Get(%v) = %q, %v; the documented ABA case is %q, true", h, v, ok, "c")
	}
}

func TestRange(t *testing.T) {
	tab := New[string](4)
	for _, fd := range []int{7, 2, 9, 0, 4} {
		mustPut(t, tab, fd, "v"+strconv.Itoa(fd))
	}
	h9, _, _ := tab.Lookup(9)
	if _, err := tab.Delete(h9); err != nil {
		t.Fatal(err)
	}
	all := []entry{
		{FD: 0, Val: "v0"},
		{FD: 2, Val: "v2"},
		{FD: 4, Val: "v4"},
		{FD: 7, Val: "v7"},
	}
	tests := []struct {
		name      string
		stopAfter int // fn returns false on this call; 0 never stops
		want      []entry
	}{
		{"all in fd order", 0, all},
		{"stop after first", 1, all[:1]},
		{"stop after third", 3, all[:3]},
		{"stop on last", 4, all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []entry
			tab.Range(func(h Handle, v string) bool {
				got = append(got, entry{FD: h.FD(), Gen: h.Gen(), Val: v})
				if cur, _ := tab.Get(h); cur != v {
					t.Errorf("Range handle %v does not Get its own value", h)
				}
				return len(got) != tt.stopAfter
			})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Range (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeleteZeroesValue(t *testing.T) {
	type state struct {
		buf  []byte
		name string
		p    *int
	}
	t.Run("pointer", func(t *testing.T) {
		tab := New[*int](4)
		x := 42
		h := mustPut(t, tab, 2, &x)
		if v, err := tab.Delete(h); err != nil || v != &x {
			t.Fatalf("Delete = %v, %v; want %p, nil", v, err, &x)
		}
		if tab.slots[2].val != nil {
			t.Error("slot still references the deleted value")
		}
	})
	t.Run("struct", func(t *testing.T) {
		tab := New[state](4)
		x := 1
		h := mustPut(t, tab, 1, state{buf: make([]byte, 10), name: "conn", p: &x})
		if _, err := tab.Delete(h); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(state{}, tab.slots[1].val, cmp.AllowUnexported(state{})); diff != "" {
			t.Errorf("slot value after Delete (-want +got):\n%s", diff)
		}
	})
}

func TestAllocs(t *testing.T) {
	const fds = 256
	tab := New[*int](fds)
	x := 1
	handles := make([]Handle, fds)
	for fd := range fds {
		handles[fd] = mustPut(t, tab, fd, &x)
	}
	var sink *int
	tests := []struct {
		name string
		fn   func()
	}{
		{"Get", func() { sink, _ = tab.Get(handles[7]) }},
		{"Get stale", func() { sink, _ = tab.Get(handles[7] + 1<<genShift) }},
		{"Lookup", func() { _, sink, _ = tab.Lookup(9) }},
		{"Delete+Put", func() {
			v, _ := tab.Delete(handles[5])
			handles[5], _ = tab.Put(5, v)
		}},
		{"Len+Cap", func() { _ = tab.Len() + tab.Cap() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(100, tt.fn); n != 0 {
				t.Errorf("%s allocates %v times per call, want 0", tt.name, n)
			}
		})
	}
	_ = sink
}

func BenchmarkTable(b *testing.B) {
	const fds = 1024
	b.Run("op=get", func(b *testing.B) {
		tab := New[*int](fds)
		x := 1
		handles := make([]Handle, fds)
		for fd := range fds {
			handles[fd], _ = tab.Put(fd, &x)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, ok := tab.Get(handles[i&(fds-1)]); !ok {
				b.Fatal("Get failed")
			}
			i++
		}
	})
	b.Run("op=put-delete", func(b *testing.B) {
		tab := New[*int](fds)
		x := 1
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h, err := tab.Put(i&(fds-1), &x)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tab.Delete(h); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
}
