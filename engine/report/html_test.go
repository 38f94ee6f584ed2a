package report

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
)

// chromiumFlags run Chromium headless with nothing that reaches a network.
var chromiumFlags = []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
	"--disable-background-networking", "--disable-component-update", "--disable-sync", "--enable-logging=stderr", "--v=0"}

// chromium runs headless Chromium (Debian's package) with a fresh profile
// and returns its stdout and its log (console messages are logged there).
func chromium(t *testing.T, args ...string) (stdout, log string) {
	t.Helper()
	bin := ""
	for _, n := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(n); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Fatal("no Chromium: apt-get install chromium (.ci/run installs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(append(chromiumFlags, "--user-data-dir="+t.TempDir()), args...)...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, errOut.String())
	}
	return out.String(), errOut.String()
}

// consoleLines are Chromium's log lines of console messages (errors,
// CSP refusals of anything loaded from elsewhere).
var consoleLines = regexp.MustCompile(`(?m)^.*:CONSOLE[:(].*$`)

// TestHTMLReportInChromium renders a recorded run's report as one HTML
// file and loads it in a real headless Chromium: the page renders the
// verdict, findings and changes, the timeline has one bar per call, the
// hostile text a workload wrote stays text, nothing is loaded from a
// network (the page's CSP would log a refusal) and the console is clean; a
// screenshot shows the timeline's bars.
func TestHTMLReportInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Chromium")
	}
	// The check works: a console error is seen.
	ctl := filepath.Join(t.TempDir(), "control.html")
	os.WriteFile(ctl, []byte(`<html><body><script>console.error("control-error")</script></body></html>`), 0o644)
	if _, log := chromium(t, "--dump-dom", "file://"+ctl); !strings.Contains(strings.Join(consoleLines.FindAllString(log, -1), "\n"), "control-error") {
		t.Fatalf("Chromium's log shows no console message of the control page:\n%s", log)
	}

	tr, err := transcript.ReadFile(filepath.Join("..", "..", "examples", "broken-pod", "transcript.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	// A workload's hostile output must stay text.
	tr.Events = append(tr.Events, &transcript.Event{Type: transcript.TypeFinding, Severity: "info",
		Summary: `<img src="http://192.0.2.1/x.png" onerror="console.error('xss')">`, Evidence: []byte(`{"html":"<script>console.error('xss')</script>"}`)})
	r := Build(tr)
	calls := 0
	for _, s := range r.Steps {
		calls += len(s.Calls)
	}
	if calls < 5 {
		t.Fatalf("the example has %d calls", calls)
	}
	var page bytes.Buffer
	if err := Render(&page, tr, "html"); err != nil {
		t.Fatal(err)
	}
	if regexp.MustCompile(`(?i)<(script|link)|src="http|href="http|@import|url\(`).Match(page.Bytes()) {
		t.Errorf("the page loads something or runs a script:\n%s", page.String())
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	if err := os.WriteFile(file, page.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	dom, log := chromium(t, "--dump-dom", "file://"+file)
	if c := consoleLines.FindAllString(log, -1); len(c) > 0 {
		t.Errorf("console messages:\n%s", strings.Join(c, "\n"))
	}
	for _, want := range []string{r.Verdict, "<h2>Timeline</h2>", "patch_configmap", `<details class="evidence">`, "started</th><td><time>" + r.Start} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	bars := regexp.MustCompile(`<rect class="call( failed)?" data-seq="(\d+)"`).FindAllStringSubmatch(dom, -1)
	if len(bars) != calls {
		t.Errorf("timeline: %d bars, want one per call (%d)", len(bars), calls)
	}
	seen := map[string]bool{}
	for _, b := range bars {
		if seen[b[2]] {
			t.Errorf("timeline: two bars for call #%s", b[2])
		}
		seen[b[2]] = true
	}
	if strings.Contains(dom, "<img") || !strings.Contains(dom, "&lt;img src=") {
		t.Errorf("the hostile finding was not escaped")
	}

	shot := filepath.Join(dir, "report.png")
	chromium(t, "--window-size=1280,1800", "--hide-scrollbars", "--screenshot="+shot, "file://"+file)
	f, err := os.Open(shot)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 1800 {
		t.Errorf("screenshot is %v, want 1280x1800", b)
	}
	// The bars' colour (#4a7fb5) is on the screen.
	barPixels := 0
	for y := img.Bounds().Min.Y; y < img.Bounds().Max.Y; y++ {
		for x := img.Bounds().Min.X; x < img.Bounds().Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, 0x4a) && near(g, 0x7f) && near(b, 0xb5) {
				barPixels++
			}
		}
	}
	if barPixels < 50 {
		t.Errorf("the screenshot shows %d pixels of the timeline's bars (%s)", barPixels, shot)
	}
	if dst := os.Getenv("KDIAG_SCREENSHOT_DIR"); dst != "" {
		b, _ := os.ReadFile(shot)
		os.WriteFile(filepath.Join(dst, "report.png"), b, 0o644)
	}
}

func near(v uint32, want uint32) bool {
	d := int(v>>8) - int(want)
	return d > -8 && d < 8
}
