// Command strace_target is the process the strace_sample tests trace. Its
// first argument picks what it does in a steady loop until killed:
//
//	stat PATH          stat PATH (missing: ENOENT), open and read /etc/hostname, sleep 2ms
//	threads N PATH     N locked OS threads each stat PATH in a loop
//	fork PATH          every 20ms run itself as "child PATH.child" and wait
//	child PATH         stat PATH once and exit
//	exit-after D PATH  stat PATH for duration D, then exit 3 from the main thread
//	getppid            call getppid as fast as possible, print the count and the
//	                   process's CPU time (ns) every 50ms
//	quiet              block in a read of stdin
//	signals            print "usr1" for every SIGUSR1 received, stat in between
//	http PATH          serve HTTP on 127.0.0.1 (each request stats PATH and reads
//	                   /etc/hostname) and request itself every 5ms
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func init() { runtime.LockOSThread() } // main runs on the thread-group leader

func statLoop(path string, pause time.Duration) {
	for {
		os.Stat(path)
		if f, err := os.Open("/etc/hostname"); err == nil {
			var b [64]byte
			f.Read(b[:])
			f.Close()
		}
		time.Sleep(pause)
	}
}

func main() {
	fmt.Println("ready")
	switch os.Args[1] {
	case "stat":
		statLoop(os.Args[2], 2*time.Millisecond)
	case "threads":
		n, _ := strconv.Atoi(os.Args[2])
		for i := 0; i < n; i++ {
			go func() {
				runtime.LockOSThread()
				statLoop(os.Args[3], time.Millisecond)
			}()
		}
		select {}
	case "fork":
		for {
			exec.Command(os.Args[0], "child", os.Args[2]+".child").Run()
			time.Sleep(20 * time.Millisecond)
		}
	case "child":
		os.Stat(os.Args[2])
	case "exit-after":
		d, _ := time.ParseDuration(os.Args[2])
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			os.Stat(os.Args[3])
			time.Sleep(time.Millisecond)
		}
		os.Exit(3)
	case "getppid":
		var n atomic.Int64
		go func() {
			for range time.Tick(50 * time.Millisecond) {
				var ru syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
				fmt.Println(n.Load(), ru.Utime.Nano()+ru.Stime.Nano())
			}
		}()
		for {
			syscall.Getppid()
			n.Add(1)
		}
	case "signals":
		c := make(chan os.Signal, 1000)
		signal.Notify(c, syscall.SIGUSR1)
		go func() {
			for range c {
				fmt.Println("usr1")
			}
		}()
		statLoop("/nonexistent-kdiag", time.Millisecond)
	case "quiet":
		var b [1]byte
		os.Stdin.Read(b[:])
	case "http":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			os.Stat(os.Args[2])
			b, _ := os.ReadFile("/etc/hostname")
			w.Write(b)
		}))
		client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			if resp, err := client.Get("http://" + ln.Addr().String() + "/"); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}
