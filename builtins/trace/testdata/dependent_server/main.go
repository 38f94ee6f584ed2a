// Command dependent_server is a test target of strace_sample's request
// tracing: a Go net/http server whose /readyz dials a dependency and fails
// when it cannot connect, while a background goroutine keeps dialling
// another address (a health pinger that is not the request).
//
//	dependent_server ADDR DEPENDENCY BACKGROUND
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	addr, dep, bg := os.Args[1], os.Args[2], os.Args[3]
	go func() {
		for {
			if c, err := net.DialTimeout("tcp", bg, time.Second); err == nil {
				c.Close()
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		c, err := net.DialTimeout("tcp", dep, time.Second)
		if err != nil {
			http.Error(w, "dependency down: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		c.Close()
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
