// Command readiness-app is the server of the readiness-shapes reproductions:
// its /readyz handler itself checks files (unlike the seed app, which checks
// in a background loop), while a background goroutine keeps reading a decoy
// configuration file many times a second.
//
//	--addr :3000          listen address
//	--flag PATH           /readyz answers 500 while PATH exists (a maintenance flag)
//	--require PATH        /readyz answers 500 while PATH does not exist
//	--config PATH         /readyz reads PATH and answers 500 if it contains "invalid"
//	--decoy PATH          read every 5 ms in the background, whatever it holds
//	--depend HOST:PORT    /readyz connects to HOST:PORT (a dependency) and answers 503 if it cannot
//	--query HOST:PORT     /readyz sends an HTTP request to HOST:PORT and answers 503 if no answer comes within 2 s
//	--stall ADDR          also accept connections on ADDR and never answer them (a stuck dependency)
//
// Every check is made while serving the request, in the handler.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	addr := flag.String("addr", ":3000", "listen address")
	flagPath := flag.String("flag", "", "readiness fails while this file exists")
	require := flag.String("require", "", "readiness fails while this file is missing")
	config := flag.String("config", "", "readiness fails while this file contains \"invalid\"")
	decoy := flag.String("decoy", "", "a file read in the background every 5 ms")
	depend := flag.String("depend", "", "readiness fails while nothing accepts connections at this host:port")
	query := flag.String("query", "", "readiness fails while this host:port does not answer an HTTP request within 2 s")
	stall := flag.String("stall", "", "accept connections on this address and never answer")
	flag.Parse()
	if *decoy != "" {
		go func() {
			for {
				_, _ = os.ReadFile(*decoy)
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	if *stall != "" {
		ln, err := net.Listen("tcp", *stall)
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go io.Copy(io.Discard, c)
			}
		}()
	}
	http.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if *flagPath != "" {
			if _, err := os.Stat(*flagPath); err == nil {
				http.Error(w, "not ready: in maintenance", http.StatusServiceUnavailable)
				return
			}
		}
		if *require != "" {
			if _, err := os.Stat(*require); err != nil {
				http.Error(w, "not ready: "+err.Error(), http.StatusInternalServerError)
				return
			}
		}
		if *config != "" {
			b, err := os.ReadFile(*config)
			if err != nil || bytes.Contains(b, []byte("invalid")) {
				http.Error(w, "not ready: configuration rejected", http.StatusInternalServerError)
				return
			}
		}
		if *depend != "" {
			c, err := net.DialTimeout("tcp", *depend, time.Second)
			if err != nil {
				http.Error(w, "not ready: dependency: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			c.Close()
		}
		if *query != "" {
			if err := ask(*query); err != nil {
				http.Error(w, "not ready: dependency: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	log.Printf("listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

// ask sends a GET to addr and waits 2 s for the first byte of an answer.
func ask(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("GET /status HTTP/1.1\r\nHost: " + addr + "\r\nConnection: close\r\n\r\n")); err != nil {
		return err
	}
	_, err = c.Read(make([]byte, 1))
	return err
}
