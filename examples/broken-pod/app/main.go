// Command app is the seed incident's broken application.
//
// It serves HTTP on --addr and, every --interval, checks with a statx(2)
// system call whether the file --watch exists. While it does, the app
// considers its configuration invalid: it logs
//
//	app_state bad - configuration at <directory of the watched file> is not valid
//
// at every check and its readiness endpoints answer 500. Once the file is
// gone it logs "app_state ok" (once, on the transition) and they answer
// 200. The readiness endpoints are /readyz, /healthz/ready (the variant
// incident's probe path) and --ready-path; /healthz always answers 200.
// The log deliberately names the directory, not the file: finding which
// file is to blame is the diagnosis.
//
// The environment variables PORT, WATCH_FILE and READY_PATH override the
// defaults of --addr, --watch and --ready-path, so the same binary serves
// variants of the incident; explicit flags win over the environment.
//
// Build it statically with CGO_ENABLED=0 go build.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	addr := flag.String("addr", envOr("PORT", ":3000", func(p string) string { return ":" + p }), "listen address (env PORT sets the port)")
	interval := flag.Duration("interval", time.Second, "how often to check the configuration")
	watch := flag.String("watch", envOr("WATCH_FILE", "/opt/config/additional_file", nil), "file whose presence makes the configuration invalid (env WATCH_FILE)")
	readyPath := flag.String("ready-path", envOr("READY_PATH", "/readyz", nil), "another readiness endpoint besides /readyz and /healthz/ready (env READY_PATH)")
	flag.Parse()

	a := &app{watch: *watch, dir: filepath.Dir(*watch)}
	a.check() // know the state before the first request arrives

	mux := http.NewServeMux()
	registered := map[string]bool{"/healthz": true}
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	for _, p := range []string{"/readyz", "/healthz/ready", *readyPath} {
		if p != "" && !registered[p] {
			mux.HandleFunc(p, a.readyz)
			registered[p] = true
		}
	}

	go func() {
		for range time.Tick(*interval) {
			a.check()
		}
	}()
	log.SetFlags(0)
	log.SetOutput(os.Stderr)
	log.Printf("listening on %s", *addr)
	log.Fatal(http.ListenAndServe(*addr, mux))
}

// envOr returns the environment variable name, transformed by f, or def
// when it is unset.
func envOr(name, def string, f func(string) string) string {
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return def
	}
	if f != nil {
		return f(v)
	}
	return v
}

type app struct {
	watch string
	dir   string
	bad   atomic.Bool
	known bool
}

// check looks for the watched file with statx(2) and logs the state: the
// bad state at every check, the good one on the transition only.
func (a *app) check() {
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, a.watch, unix.AT_STATX_SYNC_AS_STAT, unix.STATX_TYPE|unix.STATX_SIZE, &stx)
	switch {
	case err == nil:
		a.bad.Store(true)
		fmt.Printf("app_state bad - configuration at %s is not valid\n", a.dir)
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR):
		// Store before logging: whoever reads "app_state ok" must find /readyz at 200.
		if wasBad := a.bad.Swap(false); wasBad || !a.known {
			fmt.Println("app_state ok")
		}
	default:
		fmt.Fprintf(os.Stderr, "app_state unknown - cannot check configuration at %s: %v\n", a.dir, err)
		return
	}
	a.known = true
}

func (a *app) readyz(w http.ResponseWriter, r *http.Request) {
	if a.bad.Load() {
		http.Error(w, "not ready: configuration is not valid", http.StatusInternalServerError)
		return
	}
	fmt.Fprintln(w, "ok")
}
