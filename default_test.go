package reactor

import (
	"go/build"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/muxkit/reactor/poller"
)

// TestExactlyOneDefaultFile checks, for every unix OS and every set of the
// forcing tags, that exactly one root poller_*.go file builds and that it is
// the one the design table names.
func TestExactlyOneDefaultFile(t *testing.T) {
	files, err := filepath.Glob("poller_*.go")
	if err != nil || len(files) != 4 {
		t.Fatalf("poller_*.go files: %v, %v; want 4", files, err)
	}
	bsd := []string{"darwin", "dragonfly", "freebsd", "netbsd", "openbsd"}
	for _, goos := range append([]string{"linux", "solaris", "illumos", "aix"}, bsd...) {
		for _, tags := range [][]string{nil, {"reactor_poll"}, {"reactor_select"}, {"reactor_poll", "reactor_select"}} {
			want := "poller_poll.go"
			switch {
			case slices.Contains(tags, "reactor_select"):
				want = "poller_select.go"
			case slices.Contains(tags, "reactor_poll"):
			case goos == "linux":
				want = "poller_linux.go"
			case slices.Contains(bsd, goos):
				want = "poller_bsd.go"
			}
			ctx := build.Default
			ctx.GOOS, ctx.GOARCH, ctx.BuildTags = goos, "amd64", tags
			if goos == "aix" {
				ctx.GOARCH = "ppc64"
			}
			var got []string
			for _, f := range files {
				ok, err := ctx.MatchFile(".", f)
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					got = append(got, f)
				}
			}
			if len(got) != 1 || got[0] != want {
				t.Errorf("GOOS=%s tags=%s: builds %v, want exactly [%s]", goos, strings.Join(tags, ","), got, want)
			}
		}
	}
}

// TestDefaultBackendAvailable: the build's default is a backend this OS has.
func TestDefaultBackendAvailable(t *testing.T) {
	if !slices.Contains(poller.Available(), DefaultBackend) {
		t.Fatalf("DefaultBackend %v is not in poller.Available() %v", DefaultBackend, poller.Available())
	}
	p, err := poller.New(DefaultBackend)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}
