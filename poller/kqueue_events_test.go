package poller

import "testing"

// TestKevReadiness: the translation of kqueue events, run on every OS.
func TestKevReadiness(t *testing.T) {
	const econnreset = 54 // the BSDs' ECONNRESET, as EV_EOF's fflags carry it
	for _, tc := range []struct {
		name                   string
		read, write, eof, eerr bool
		fflags                 uint32
		want                   Events
	}{
		{"readable", true, false, false, false, 0, Readable},
		{"writable", false, true, false, false, 0, Writable},
		{"peer shut its sending side", true, false, true, false, 0, Readable | HangUp},
		{"peer reset, read filter", true, false, true, false, econnreset, Readable | HangUp | Error},
		{"peer reset, write filter", false, true, true, false, econnreset, Writable | HangUp | Error},
		{"fflags without EV_EOF mean nothing", true, false, false, false, econnreset, Readable},
		{"EV_ERROR", true, false, false, true, 0, Readable | Error},
	} {
		if got := kevReadiness(tc.read, tc.write, tc.eof, tc.eerr, tc.fflags); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
