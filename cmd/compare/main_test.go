package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain lets the test binary be what compare re-executes itself as.
func TestMain(m *testing.M) {
	if code, ok := asServer(); ok {
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-models", "fork"},
		{"-backends", "nosuch"},
		{"-conns", "0"},
		{"-conns", "ten"},
		{"-idle", "-1"},
		{"-size", "0"},
		{"-duration", "0s"},
		{"-workers", "0"},
		{"-bogus"},
		{"extra"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
		if lines := strings.Count(errb.String(), "\n"); lines != 1 || !strings.HasPrefix(errb.String(), "compare: ") {
			t.Errorf("%q: stderr %q: want one line", args, errb.String())
		}
		if out.Len() != 0 {
			t.Errorf("%q: stdout %q", args, out.String())
		}
	}
}

// TestJSONAndSVG runs a tiny comparison: every model, 1 and 3
// connections, and the waiting-sockets run with 2 idle; one JSON object per
// measurement, each with the fields a reader needs, and a chart that is
// well-formed SVG.
func TestJSONAndSVG(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: starts a dozen server processes")
	}
	svg := filepath.Join(t.TempDir(), "chart.svg")
	var out, errb bytes.Buffer
	args := []string{"-json", "-conns", "1,3", "-idle", "2", "-active", "2", "-duration", "200ms", "-warmup", "50ms", "-dial-wait", "1s", "-workers", "2", "-svg", svg}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errb.String())
	}
	var rows []Row
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var r Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		rows = append(rows, r)
	}
	c, _ := parse(args)
	want := len(targets(c))*2 + len(c.backends)
	if len(rows) != want {
		t.Fatalf("%d JSON objects, want %d (stderr %s)", len(rows), want, errb.String())
	}
	for _, r := range rows {
		name := r.Model + "/" + r.Backend
		switch {
		case r.Run == "conns" && r.Model == "iterative" && r.Conns == 3:
			// One served, two waiting: the model's defining property.
			if r.Served != 1 || r.Waiting != 2 {
				t.Errorf("iterative at 3 connections: served %d, waiting %d; want 1 and 2", r.Served, r.Waiting)
			}
		case r.Run == "conns" && r.Model == "threadpool" && r.Conns == 3:
			// A pool of two threads serves two and queues the third.
			if r.Served != 2 || r.Waiting != 1 {
				t.Errorf("threadpool of 2 at 3 connections: served %d, waiting %d; want 2 and 1", r.Served, r.Waiting)
			}
		case r.Served != r.Conns:
			t.Errorf("%s %d+%d: served %d (note %q)", name, r.Conns, r.Idle, r.Served, r.Note)
		}
		if r.MsgsPerSec <= 0 || r.P99us <= 0 || r.SetupUs <= 0 {
			t.Errorf("%s %d: empty measurement %+v", name, r.Conns, r)
		}
		if _, err := os.Stat("/proc/self/stat"); err == nil && (r.PeakRSS <= 0 || r.Threads <= 0 || r.Procs <= 0) {
			t.Errorf("%s %d: no process figures %+v", name, r.Conns, r)
		}
		if r.Model == "multiprocess" && r.Procs != 1+r.Conns+r.Idle && r.Procs > 0 {
			t.Errorf("multiprocess with %d clients: %d processes", r.Conns+r.Idle, r.Procs)
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	lines := 0
	for {
		tok, err := d.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("chart is not well-formed XML: %v", err)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "polyline" {
			lines++
		}
	}
	backends := 0
	for _, tg := range targets(c) {
		if tg.model == "multiplex" {
			backends++
		}
	}
	// Two panels with a line per model/backend, and the waiting-sockets
	// panel with a line per backend.
	if want := 2*len(targets(c)) + backends; lines != want {
		t.Errorf("chart has %d lines, want %d (two panels of %d lines, the waiting-sockets panel of %d)", lines, want, len(targets(c)), backends)
	}
	if !bytes.Contains(b, []byte("Waiting sockets")) {
		t.Error("chart has no waiting-sockets panel")
	}
}
