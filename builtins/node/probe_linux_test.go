//go:build linux

package node_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
)

const readyz = "http://127.0.0.1:3000/readyz"

func TestHTTPProbeFollowsTheIncident(t *testing.T) {
	tg, h := start(t, nodetest.Options{})

	inside := must[*node.HTTPProbeResult](t, "http_probe", engine.Args{"url": readyz, "ns": h})
	if inside.OK || inside.Status != 500 || inside.Error != "" {
		t.Fatalf("probe inside the target's netns: ok=%v status=%d error=%q, want ok=false status=500", inside.OK, inside.Status, inside.Error)
	}
	if !strings.Contains(inside.Body, "configuration is not valid") || inside.Address != "127.0.0.1:3000" {
		t.Errorf("body %q address %q", inside.Body, inside.Address)
	}
	if ua := inside.RequestHeaders["User-Agent"]; ua != "kube-probe/1.34" {
		t.Errorf("User-Agent %q, want kube-probe/1.34", ua)
	}

	host := must[*node.HTTPProbeResult](t, "http_probe", engine.Args{"url": readyz})
	if host.OK || host.Status != 0 || host.Error != "connection refused" {
		t.Fatalf("probe from the node's netns: ok=%v status=%d error=%q detail=%q, want connection refused", host.OK, host.Status, host.Error, host.Detail)
	}

	// The fix, made through the container's own file system.
	mark := len(tg.Output())
	rm := must[*node.RunResult](t, "run", engine.Args{"cmd": []any{"rm", "/opt/config/additional_file"}, "ns": h})
	if rm.ExitCode != 0 {
		t.Fatalf("rm in the container: %+v", rm)
	}
	if err := tg.WaitOutput("app_state ok", mark, 3*time.Second); err != nil {
		t.Fatal(err)
	}
	fixed := must[*node.HTTPProbeResult](t, "http_probe", engine.Args{"url": readyz, "pid": int64(tg.PID)})
	if !fixed.OK || fixed.Status != 200 {
		t.Fatalf("probe after the fix: ok=%v status=%d error=%q", fixed.OK, fixed.Status, fixed.Error)
	}
}

func TestTCPProbe(t *testing.T) {
	tg, h := start(t, nodetest.Options{})
	in := must[*node.TCPProbeResult](t, "tcp_probe", engine.Args{"host_port": "localhost:3000", "ns": h})
	if !in.OK || in.Address != "127.0.0.1:3000" {
		t.Errorf("tcp_probe inside: %+v", in)
	}
	closed := must[*node.TCPProbeResult](t, "tcp_probe", engine.Args{"host_port": "127.0.0.1:3001", "pid": int64(tg.PID)})
	if closed.OK || closed.Error != "connection refused" {
		t.Errorf("tcp_probe of a closed port inside: %+v", closed)
	}
	host := must[*node.TCPProbeResult](t, "tcp_probe", engine.Args{"host_port": "127.0.0.1:3000"})
	if host.OK || host.Error != "connection refused" {
		t.Errorf("tcp_probe from the node: %+v", host)
	}
	// Inside the target's netns there is only lo: anything else is
	// unreachable, and must come back as a value.
	far := must[*node.TCPProbeResult](t, "tcp_probe", engine.Args{"host_port": "192.0.2.1:80", "ns": h, "timeout": "300ms"})
	if far.OK || far.Error != "network unreachable" {
		t.Errorf("tcp_probe to an unroutable address inside: %+v", far)
	}
	_, err := call(t, "tcp_probe", engine.Args{"host_port": "nonsense", "ns": h})
	wantErr(t, err, engine.KindInvalid, "tcp_probe: host_port")
}

func TestHTTPProbeKubeletSemantics(t *testing.T) {
	var gotUA, gotAccept string
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		gotUA, gotAccept = r.UserAgent(), r.Header.Get("Accept")
		w.Header().Set("Set-Cookie", "session=abc")
		fmt.Fprint(w, "fine")
	})
	mux.HandleFunc("/same", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/other", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://other.invalid/", http.StatusFound)
	})
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, strings.Repeat("x", 20<<10)) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) })
	mux.HandleFunc("/missing", http.NotFound)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	for _, tc := range []struct {
		path      string
		ok        bool
		status    int
		errReason string
		warning   string
	}{
		{"/ok", true, 200, "", ""},
		{"/same", true, 200, "", ""},
		{"/other", true, 302, "", "probe terminated redirects"},
		{"/loop", false, 0, "stopped after 10 redirects", ""},
		{"/missing", false, 404, "", ""},
		{"/slow", false, 0, "timeout", ""},
	} {
		r := must[*node.HTTPProbeResult](t, "http_probe", engine.Args{"url": srv.URL + tc.path, "timeout": "500ms"})
		if r.OK != tc.ok || r.Status != tc.status || r.Error != tc.errReason || r.Warning != tc.warning {
			t.Errorf("%s: ok=%v status=%d error=%q warning=%q, want ok=%v status=%d error=%q warning=%q (detail %q)",
				tc.path, r.OK, r.Status, r.Error, r.Warning, tc.ok, tc.status, tc.errReason, tc.warning, r.Detail)
		}
		if tc.path == "/ok" && r.Headers["Set-Cookie"] != engine.Redacted {
			t.Errorf("Set-Cookie recorded as %q", r.Headers["Set-Cookie"])
		}
	}
	if gotUA != "kube-probe/1.34" || gotAccept != "*/*" {
		t.Errorf("server saw User-Agent %q Accept %q", gotUA, gotAccept)
	}
	big := must[*node.HTTPProbeResult](t, "http_probe", engine.Args{"url": srv.URL + "/big"})
	if len(big.Body) != 10<<10 || !big.BodyTruncated || !big.OK {
		t.Errorf("20 KiB body: kept %d bytes, truncated=%v ok=%v", len(big.Body), big.BodyTruncated, big.OK)
	}
	_, err := call(t, "http_probe", engine.Args{"url": "127.0.0.1:3000/readyz"})
	wantErr(t, err, engine.KindInvalid, "http_probe: url")
}

func TestHTTPProbeRedactsSecretHeaders(t *testing.T) {
	_, h := start(t, nodetest.Options{})
	r := must[*node.HTTPProbeResult](t, "http_probe", engine.Args{"url": "http://127.0.0.1:3000/healthz", "ns": h,
		"headers": map[string]any{"Authorization": "Bearer s3cret", "Cookie": "session=abc", "X-Trace": "1"}})
	if !r.OK || r.Status != 200 {
		t.Fatalf("healthz: %+v", r)
	}
	for _, k := range []string{"Authorization", "Cookie"} {
		if r.RequestHeaders[k] != engine.Redacted {
			t.Errorf("request header %s recorded as %q", k, r.RequestHeaders[k])
		}
	}
	if r.RequestHeaders["X-Trace"] != "1" {
		t.Errorf("X-Trace = %q", r.RequestHeaders["X-Trace"])
	}
}

// TestHTTPProbeAgreesWithCurl cross-checks the status with the standard
// tools: nsenter -t PID -n curl.
func TestHTTPProbeAgreesWithCurl(t *testing.T) {
	for _, tool := range []string{"nsenter", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed (apt-get install curl util-linux); cross-check skipped", tool)
		}
	}
	tg, h := start(t, nodetest.Options{})
	for _, path := range []string{"/readyz", "/healthz", "/nope"} {
		out, err := exec.Command("nsenter", "-t", strconv.Itoa(tg.PID), "-n", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:3000"+path).Output()
		if err != nil {
			t.Fatalf("nsenter curl: %v", err)
		}
		r := must[*node.HTTPProbeResult](t, "http_probe", engine.Args{"url": "http://127.0.0.1:3000" + path, "ns": h})
		if got := fmt.Sprint(r.Status); got != string(out) {
			t.Errorf("%s: http_probe status %s, curl %s", path, got, out)
		}
	}
}

// TestProbesLeaveNoThreadBehind checks the thread discipline: after many
// probes and runs, every thread of this process is back in the node's
// namespaces and root.
func TestProbesLeaveNoThreadBehind(t *testing.T) {
	want := map[string]string{}
	for _, ns := range []string{"net", "mnt", "uts", "pid_for_children"} {
		want[ns] = readlink(t, "/proc/self/ns/"+ns)
	}
	_, h := start(t, nodetest.Options{})
	for range 20 {
		must[*node.HTTPProbeResult](t, "http_probe", engine.Args{"url": readyz, "ns": h})
		must[*node.RunResult](t, "run", engine.Args{"cmd": []any{"true"}, "ns": h})
	}
	eventually(t, 2*time.Second, "all threads back in the node's namespaces", func() bool {
		tasks, _ := os.ReadDir("/proc/self/task")
		for _, task := range tasks {
			for ns, w := range want {
				if got, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/" + ns); err == nil && got != w {
					t.Logf("thread %s: %s is %s", task.Name(), ns, got)
					return false
				}
			}
			if root, err := os.Readlink("/proc/self/task/" + task.Name() + "/root"); err == nil && root != "/" {
				t.Logf("thread %s: root is %s", task.Name(), root)
				return false
			}
		}
		return true
	})
}
