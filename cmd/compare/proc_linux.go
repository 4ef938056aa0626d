package main

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/muxkit/reactor/internal/procfs"
)

// canPin reports whether processes and threads can be pinned to CPUs here.
func canPin() bool { return true }

// pinThread pins the calling OS thread (the caller has locked it) to cpu.
func pinThread(cpu int) error {
	var set unix.CPUSet
	set.Set(cpu)
	return unix.SchedSetaffinity(0, &set)
}

// clkTck is the kernel's clock tick for /proc CPU times: 100 on every
// linux this runs on (USER_HZ is fixed at 100 for the /proc ABI).
const clkTck = 100

// procStat reads utime+stime and cutime+cstime (reaped children) of pid,
// in clock ticks.
func procStat(pid int) (self, children time.Duration, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	// f[0] is field 3 (state); utime is field 14, so f[11].
	if len(f) < 15 {
		return 0, 0, false
	}
	tick := func(s string) time.Duration {
		n, _ := strconv.ParseInt(s, 10, 64)
		return time.Duration(n) * time.Second / clkTck
	}
	return tick(f[11]) + tick(f[12]), tick(f[13]) + tick(f[14]), true
}

// statusField reads a "Name:   value kB" line of /proc/PID/status.
func statusField(pid int, name string) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			f := strings.Fields(v)
			if len(f) == 0 {
				return 0
			}
			n, _ := strconv.ParseInt(f[0], 10, 64)
			if len(f) > 1 && f[1] == "kB" {
				n *= 1024
			}
			return n
		}
	}
	return 0
}

// tree lists pid and all its live (not zombie) descendants.
func tree(pid int) []int {
	ps, _ := procfs.All()
	children := map[int][]int{}
	for _, p := range ps {
		if p.State != "Z" {
			children[p.PPid] = append(children[p.PPid], p.Pid)
		}
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// usage is a snapshot of a server's process tree.
type usage struct {
	cpu     time.Duration // CPU time of the tree's live threads, plus reaped children
	rss     int64         // resident bytes, summed over the tree
	peak    int64         // the server process's own peak resident bytes
	threads int
	procs   int
	ok      bool
}

// runTime sums the run time of every live thread of pid, from
// /proc/PID/task/*/schedstat, in nanoseconds: finer than utime and stime's
// 10 ms ticks, which a process serving a few messages never reaches.
func runTime(pid int) (time.Duration, bool) {
	dir := "/proc/" + strconv.Itoa(pid) + "/task/"
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, false
	}
	var sum time.Duration
	for _, e := range ents {
		b, err := os.ReadFile(dir + e.Name() + "/schedstat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) > 0 {
			n, _ := strconv.ParseInt(f[0], 10, 64)
			sum += time.Duration(n)
		}
	}
	return sum, true
}

func snapshot(pid int) usage {
	var u usage
	for i, p := range tree(pid) {
		run, ok := runTime(p)
		if !ok {
			continue
		}
		u.ok = true
		u.cpu += run
		if i == 0 {
			if _, reaped, ok := procStat(p); ok {
				u.cpu += reaped // children that exited, in ticks
			}
			u.peak = statusField(p, "VmHWM")
		}
		u.rss += statusField(p, "VmRSS")
		u.threads += int(statusField(p, "Threads"))
		u.procs++
	}
	return u
}
