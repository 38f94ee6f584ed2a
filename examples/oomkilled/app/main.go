// Command report-app is the oomkilled example's report server, whose
// memory need has a steady part and a peak.
//
// At start it loads its price index into memory (--index MiB, env
// INDEX_MIB) and keeps it. Every --every it builds a report, which needs
// --report MiB more for --hold, then frees it. Its working set therefore
// sits at about the index's size and peaks at index + report: a memory
// limit between the two kills it at every report, not by a leak.
//
// Build it statically with CGO_ENABLED=0 go build.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"time"
)

// mib is one mebibyte.
const mib = 1 << 20

// fill allocates n MiB and writes to every page, so that the kernel
// charges all of it to the process.
func fill(n int) []byte {
	b := make([]byte, n*mib)
	for i := 0; i < len(b); i += 4096 {
		b[i] = byte(i)
	}
	return b
}

// build holds n MiB for hold, as a report does, and returns its size.
func build(n int, hold time.Duration) int {
	r := fill(n)
	time.Sleep(hold)
	return len(r)
}

func main() {
	index := 32
	if v, err := strconv.Atoi(os.Getenv("INDEX_MIB")); err == nil {
		index = v
	}
	flag.IntVar(&index, "index", index, "MiB of index held for the process's life (env INDEX_MIB)")
	report := flag.Int("report", 16, "MiB more that building a report needs")
	every := flag.Duration("every", 15*time.Second, "how often a report is built")
	hold := flag.Duration("hold", 2*time.Second, "how long a report's memory is held")
	flag.Parse()
	if index < 0 || *report < 0 || index+*report > 4096 || *every <= 0 {
		fmt.Fprintln(os.Stderr, "report-app: --index and --report must be 0..4096 MiB in all, --every positive")
		os.Exit(2)
	}
	idx := fill(index)
	fmt.Printf("report-app: price index loaded (%d MiB)\n", index)
	for n := 1; ; n++ {
		time.Sleep(*every)
		fmt.Printf("report-app: building report %d (%d MiB)\n", n, *report)
		fmt.Printf("report-app: report %d done (%d MiB)\n", n, build(*report, *hold)/mib)
		debug.FreeOSMemory()
		runtime.KeepAlive(idx)
	}
}
