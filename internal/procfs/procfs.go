// Package procfs reads the process table from /proc (linux): what
// cmd/compare needs to find a server's whole process tree, and tests need
// to count a server's children.
package procfs

import (
	"bytes"
	"os"
	"strconv"
)

// Proc is one process as /proc/PID/stat shows it.
type Proc struct {
	Pid   int
	PPid  int
	State string // "S" sleeping, "R" running, "Z" zombie, ...
}

// All lists every process there is now. It fails only where /proc cannot
// be read; a process that exits while it reads is left out.
func All() ([]Proc, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var ps []Proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces; split after ')'.
		f := bytes.Fields(b[bytes.LastIndexByte(b, ')')+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(string(f[1]))
		ps = append(ps, Proc{Pid: pid, PPid: ppid, State: string(f[0])})
	}
	return ps, nil
}
