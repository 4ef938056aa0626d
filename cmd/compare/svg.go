package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"os"
	"runtime"
	"slices"
	"time"
)

// series is one line of the chart: a model (and backend) across
// connection counts.
type series struct {
	name   string
	conns  []float64
	rate   []float64 // messages per second
	p99    []float64 // microseconds
	full   []bool    // every connection was served
	colour string
}

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf", "#7f7f7f"}

// writeSVG draws two panels, throughput and p99 latency against the number
// of connections (log scale), one line per model/backend, from the rows
// of the connection sweep, and under them, if the waiting-sockets run was
// made, a third: CPU time per message against the idle connections beside
// the busy ones, one line per backend (see waitingPanel). Points where a
// model served nothing are left out of its line; points where it served
// only some are drawn hollow.
func writeSVG(path string, c *config, rows []Row) error {
	var ss []*series
	byName := map[string]*series{}
	var xs []float64
	for _, r := range rows {
		if r.Run != "conns" || r.MsgsPerSec <= 0 {
			continue
		}
		name := r.Model
		if r.Backend != "" {
			name += "/" + r.Backend
		}
		s := byName[name]
		if s == nil {
			s = &series{name: name, colour: palette[len(ss)%len(palette)]}
			byName[name] = s
			ss = append(ss, s)
		}
		s.conns = append(s.conns, float64(r.Conns))
		s.rate = append(s.rate, r.MsgsPerSec)
		s.p99 = append(s.p99, max(r.P99us, 1))
		s.full = append(s.full, r.Waiting == 0 && r.Closed == 0)
		if !slices.Contains(xs, float64(r.Conns)) {
			xs = append(xs, float64(r.Conns))
		}
	}
	if len(ss) == 0 {
		return fmt.Errorf("-svg: no measurement served any message; nothing to draw")
	}
	slices.Sort(xs)

	const (
		w             = 1000
		top, pw, ph   = 50, 400, 300
		left1, left2  = 80, 580
		legendY       = top + ph + 60
		fontFamily    = "font-family=\"sans-serif\""
		gridColour    = "#ddd"
		axisTextStyle = "font-size=\"11\" fill=\"#333\""
	)
	h := legendY + ((len(ss)+4)/5)*20 + 20
	waitTop := h + 50
	wait := waitingSeries(rows)
	for _, l := range wait { // each backend in its colour above
		if s := byName["multiplex/"+l.name]; s != nil {
			l.colour = s.colour
		}
	}
	if len(wait) > 0 {
		h = waitTop + ph + 50 + ((len(wait)+4)/5)*20 + 20
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" %s>\n", w, h, w, h, fontFamily)
	fmt.Fprintf(&b, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h)
	fmt.Fprintf(&b, "<text x=\"%d\" y=\"22\" font-size=\"15\">Echo servers on loopback: %d-byte messages, one in flight per connection (%s/%s, %d CPUs, %s, %s)</text>\n",
		left1, c.size, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), time.Now().Format("2006-01-02"))

	lx := func(v, left float64) float64 { // log-scale x
		lo, hi := math.Log10(xs[0]), math.Log10(xs[len(xs)-1])
		if hi == lo {
			return left + pw/2
		}
		return left + (math.Log10(v)-lo)/(hi-lo)*pw
	}
	var maxRate float64
	lo99, hi99 := math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for i := range s.rate {
			maxRate = max(maxRate, s.rate[i])
			lo99, hi99 = min(lo99, s.p99[i]), max(hi99, s.p99[i])
		}
	}
	rateTop := niceCeil(maxRate * 1.05)
	yRate := func(v float64) float64 { return top + ph - v/rateTop*ph }
	d0, d1 := math.Floor(math.Log10(lo99)), math.Ceil(math.Log10(hi99))
	if d1 == d0 {
		d1++
	}
	y99 := func(v float64) float64 { return top + ph - (math.Log10(v)-d0)/(d1-d0)*ph }

	panel := func(left float64, title, ylabel string) {
		fmt.Fprintf(&b, "<text x=\"%.0f\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">%s</text>\n", left, top-10, html.EscapeString(title))
		fmt.Fprintf(&b, "<rect x=\"%.0f\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n", left, top, pw, ph)
		for _, x := range xs {
			px := lx(x, left)
			fmt.Fprintf(&b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n", px, top, px, top+ph, gridColour)
			fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" %s>%s</text>\n", px, top+ph+16, axisTextStyle, thousands(x))
		}
		fmt.Fprintf(&b, "<text x=\"%.0f\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">connections (log scale)</text>\n", left+pw/2, top+ph+34)
		fmt.Fprintf(&b, "<text transform=\"translate(%.0f,%d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">%s</text>\n", left-58, top+ph/2, html.EscapeString(ylabel))
	}
	panel(left1, "Throughput", "echoes per second")
	for i := 0; i <= 5; i++ {
		v := rateTop * float64(i) / 5
		py := yRate(v)
		fmt.Fprintf(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\"/>\n", left1, py, left1+pw, py, gridColour)
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" %s>%s</text>\n", left1-6, py+4, axisTextStyle, human(v))
	}
	panel(left2, "p99 round-trip latency", "p99 latency (log scale)")
	for d := d0; d <= d1; d++ {
		v := math.Pow(10, d)
		py := y99(v)
		fmt.Fprintf(&b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"%s\"/>\n", left2, py, left2+pw, py, gridColour)
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" %s>%s</text>\n", left2-6, py+4, axisTextStyle, dur(v))
	}
	for _, s := range ss {
		line := func(left float64, ys []float64, f func(float64) float64) {
			var pts bytes.Buffer
			for i := range s.conns {
				fmt.Fprintf(&pts, "%.1f,%.1f ", lx(s.conns[i], left), f(ys[i]))
			}
			fmt.Fprintf(&b, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n", bytes.TrimSpace(pts.Bytes()), s.colour)
			for i := range s.conns {
				fill := s.colour
				if !s.full[i] {
					fill = "white"
				}
				fmt.Fprintf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\" stroke=\"%s\" stroke-width=\"1.5\"/>\n", lx(s.conns[i], left), f(ys[i]), fill, s.colour)
			}
		}
		line(left1, s.rate, yRate)
		line(left2, s.p99, y99)
	}
	// Legend, in rows of five under both panels.
	for i, s := range ss {
		x := left1 + (i%5)*180
		y := legendY + (i/5)*20
		fmt.Fprintf(&b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>\n", x, y-4, x+22, y-4, s.colour)
		fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"12\">%s</text>\n", x+28, y, html.EscapeString(s.name))
	}
	fmt.Fprintf(&b, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#555\">Hollow points: not every connection was served (the rest waited unanswered, or the server refused them); the figures are for those served.</text>\n", left1, legendY+((len(ss)+4)/5)*20+6)
	if len(wait) > 0 {
		waitingPanel(&b, wait, left1, waitTop, pw, ph)
	}
	fmt.Fprintln(&b, "</svg>")
	return os.WriteFile(path, b.Bytes(), 0o644)
}

// waitLine is one backend's line of the waiting-sockets panel.
type waitLine struct {
	name   string
	idle   []int
	cpu    []float64 // server CPU microseconds per message; or messages per second, see waitingSeries
	colour string
}

// waitingSeries collects the waiting-sockets run, one line per backend:
// CPU per message where the OS gave it for every point, else throughput.
func waitingSeries(rows []Row) []*waitLine {
	var ls []*waitLine
	byName := map[string]*waitLine{}
	for _, r := range rows {
		if r.Run != "waiting" || r.MsgsPerSec <= 0 {
			continue
		}
		l := byName[r.Backend]
		if l == nil {
			l = &waitLine{name: r.Backend, colour: palette[len(ls)%len(palette)]}
			byName[r.Backend] = l
			ls = append(ls, l)
		}
		l.idle = append(l.idle, r.Idle)
		l.cpu = append(l.cpu, r.CPUusPerMsg)
	}
	return ls
}

// waitingPanel draws the waiting-sockets run: server CPU time per message
// (log scale) against the idle connections beside the busy ones, one line
// per backend, the idle counts evenly spaced. It is the seed's claim in
// one picture: select and poll pay for every socket they watch, epoll and
// kqueue for the ready ones. Where a point has no CPU figure (the OS gave
// none) it is left out.
func waitingPanel(b *bytes.Buffer, ls []*waitLine, left, top, pw, ph int) {
	var idles []int
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, l := range ls {
		for i, n := range l.idle {
			if !slices.Contains(idles, n) {
				idles = append(idles, n)
			}
			if v := l.cpu[i]; v > 0 {
				lo, hi = min(lo, v), max(hi, v)
			}
		}
	}
	slices.Sort(idles)
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"13\" font-weight=\"bold\">Waiting sockets: server CPU per message, busy connections beside idle ones</text>\n", left, top-10)
	fmt.Fprintf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n", left, top, pw, ph)
	px := func(n int) float64 {
		i := slices.Index(idles, n)
		if len(idles) == 1 {
			return float64(left + pw/2)
		}
		return float64(left) + 20 + float64(i)*float64(pw-40)/float64(len(idles)-1)
	}
	for _, n := range idles {
		fmt.Fprintf(b, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", px(n), top, px(n), top+ph)
		fmt.Fprintf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\" fill=\"#333\">%s</text>\n", px(n), top+ph+16, thousands(float64(n)))
	}
	fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\">idle connections beside the busy ones</text>\n", left+pw/2, top+ph+34)
	fmt.Fprintf(b, "<text transform=\"translate(%d,%d) rotate(-90)\" text-anchor=\"middle\" font-size=\"12\">CPU per message (log scale)</text>\n", left-58, top+ph/2)
	if math.IsInf(lo, 1) {
		fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"12\" fill=\"#555\">no CPU figures on this OS</text>\n", left+pw/2, top+ph/2)
		return
	}
	d0, d1 := math.Floor(math.Log10(lo)), math.Ceil(math.Log10(hi))
	if d1 == d0 {
		d1++
	}
	py := func(v float64) float64 { return float64(top+ph) - (math.Log10(v)-d0)/(d1-d0)*float64(ph) }
	for d := d0; d <= d1; d++ {
		y := py(math.Pow(10, d))
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, left+pw, y)
		fmt.Fprintf(b, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"11\" fill=\"#333\">%s</text>\n", left-6, y+4, dur(math.Pow(10, d)))
	}
	for _, l := range ls {
		var pts bytes.Buffer
		for i, n := range l.idle {
			if l.cpu[i] > 0 {
				fmt.Fprintf(&pts, "%.1f,%.1f ", px(n), py(l.cpu[i]))
			}
		}
		fmt.Fprintf(b, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"2\"/>\n", bytes.TrimSpace(pts.Bytes()), l.colour)
		for i, n := range l.idle {
			if l.cpu[i] > 0 {
				fmt.Fprintf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", px(n), py(l.cpu[i]), l.colour)
			}
		}
	}
	for i, l := range ls {
		x := left + (i%5)*180
		y := top + ph + 60 + (i/5)*20
		fmt.Fprintf(b, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"3\"/>\n", x, y-4, x+22, y-4, l.colour)
		fmt.Fprintf(b, "<text x=\"%d\" y=\"%d\" font-size=\"12\">multiplex/%s</text>\n", x+28, y, html.EscapeString(l.name))
	}
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

func thousands(x float64) string {
	n := int64(x)
	if n < 1000 {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%s,%03d", thousands(float64(n/1000)), n%1000)
}
