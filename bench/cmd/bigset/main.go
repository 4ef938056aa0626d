// Command bigset times one Redis SET of a large value sent in 64 KiB
// writes, as a client with a big value sends it, against any RESP server
// (redis-server, or bench/cmd/respserve): from the command's first byte to
// the server's +OK. It prints, per size, the median of -n runs in
// milliseconds and the spread (min-max).
//
//	bigset -addr 127.0.0.1:6379 -sizes 1,4,16,64 -n 9
package main

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6379", "the server")
	sizes := flag.String("sizes", "1,4,16,64", "comma-separated value sizes in MiB")
	n := flag.Int("n", 9, "runs per size")
	chunk := flag.Int("chunk", 64<<10, "bytes per write")
	flag.Parse()
	c, err := net.Dial("tcp", *addr)
	if err != nil {
		fail(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	for _, f := range strings.Split(*sizes, ",") {
		mib, err := strconv.Atoi(f)
		if err != nil || mib <= 0 {
			fail(fmt.Errorf("-sizes: %q is not a size in MiB", f))
		}
		size := mib << 20
		cmd := fmt.Appendf(nil, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n", size)
		cmd = append(cmd, make([]byte, size)...)
		for i := len(cmd) - size; i < len(cmd); i++ {
			cmd[i] = 'a' + byte(i%26)
		}
		cmd = append(cmd, "\r\n"...)
		var ms []float64
		for range *n + 1 { // the first run warms up and is not counted
			start := time.Now()
			for off := 0; off < len(cmd); off += *chunk {
				if _, err := c.Write(cmd[off:min(off+*chunk, len(cmd))]); err != nil {
					fail(err)
				}
			}
			line, err := r.ReadString('\n')
			if err != nil {
				fail(err)
			}
			if line != "+OK\r\n" {
				fail(fmt.Errorf("SET of %d MiB: reply %q", mib, line))
			}
			ms = append(ms, float64(time.Since(start))/1e6)
		}
		ms = ms[1:]
		slices.Sort(ms)
		fmt.Printf("%d MiB %.2f ms (%.2f-%.2f)\n", mib, ms[len(ms)/2], ms[0], ms[len(ms)-1])
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bigset:", err)
	os.Exit(1)
}
