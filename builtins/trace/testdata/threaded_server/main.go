// Command threaded_server is a test target of strace_sample's request
// tracing: a Go net/http server (a goroutine per connection, on any of the
// runtime's threads) whose /readyz fails while a flag file exists, and a
// background goroutine that keeps reading a decoy configuration file.
//
//	threaded_server ADDR FLAG DECOY
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	addr, flag, decoy := os.Args[1], os.Args[2], os.Args[3]
	go func() {
		for {
			_, _ = os.ReadFile(decoy)
			time.Sleep(2 * time.Millisecond)
		}
	}()
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := os.Stat(flag); err == nil {
			http.Error(w, "not ready", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	_ = http.Serve(ln, nil)
}
