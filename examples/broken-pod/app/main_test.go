package main

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestVariantFromEnvironment builds the app and runs it as the variant
// incident would: port and watched file from PORT and WATCH_FILE.
func TestVariantFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "app")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	watched := filepath.Join(dir, "etc", "secret-flag")
	if err := os.MkdirAll(filepath.Dir(watched), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(watched, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	cmd := exec.Command(bin, "--interval", "100ms")
	cmd.Env = []string{fmt.Sprintf("PORT=%d", port), "WATCH_FILE=" + watched, "READY_PATH=/ready/now"}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(5 * time.Second):
			t.Fatal("no log line after 5s")
		}
		return ""
	}

	want := "app_state bad - configuration at " + filepath.Dir(watched) + " is not valid"
	if l := next(); l != want {
		t.Fatalf("first log line %q, want %q", l, want)
	}
	readyz := fmt.Sprintf("http://127.0.0.1:%d/readyz", port)
	status := func(url string) int {
		for range 50 {
			resp, err := http.Get(url)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("%s never answered", url)
		return 0
	}
	for _, p := range []string{"/readyz", "/healthz/ready", "/ready/now"} {
		if s := status(strings.Replace(readyz, "/readyz", p, 1)); s != 500 {
			t.Errorf("%s while the file exists: %d, want 500", p, s)
		}
	}
	if s := status(strings.Replace(readyz, "readyz", "healthz", 1)); s != 200 {
		t.Errorf("healthz: %d, want 200", s)
	}
	if err := os.Remove(watched); err != nil {
		t.Fatal(err)
	}
	for l := next(); l != "app_state ok"; l = next() {
		if strings.Contains(l, "secret-flag") {
			t.Fatalf("the log names the file: %q", l)
		}
	}
	for _, p := range []string{"/readyz", "/healthz/ready", "/ready/now"} {
		if s := status(strings.Replace(readyz, "/readyz", p, 1)); s != 200 {
			t.Errorf("%s after the file is gone: %d, want 200", p, s)
		}
	}
	select {
	case l := <-lines:
		t.Errorf("logged %q after the transition; want app_state ok once", l)
	case <-time.After(300 * time.Millisecond):
	}
}
