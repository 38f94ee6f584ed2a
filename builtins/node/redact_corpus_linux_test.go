//go:build linux

package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/builtins/std"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// mark returns the unique, recognisable secret value of corpus entry i.
func mark(i int) string { return fmt.Sprintf("Zq%02dKpW7", i) }

// secretCorpus is one line per kind of secret, as files, environments,
// command lines and HTTP answers hold them.
func secretCorpus() []string {
	pad := strings.Repeat("a", 28)
	return []string{
		"MYSQL_PWD=" + mark(1),
		"GITHUB_PAT=" + mark(2),
		"SLACK_WEBHOOK=https://hooks.slack.com/services/T000/B000/" + mark(3),
		"DATABASE_URL=postgres://app:" + mark(4) + "@db:5432/shop",
		"AWS_SECRET_ACCESS_KEY=" + mark(5),
		"cache at redis://:" + mark(6) + "@redis:6379/0",
		"callback https://api.example.com/cb?access_token=" + mark(7) + "&x=1",
		"GET https://maps.example.com/x?api_key=" + mark(8),
		"Authorization: Bearer " + mark(9),
		"authorization: Basic dXNlcjp" + mark(10),
		"-----BEGIN RSA PRIVATE KEY-----\nMIIEow" + mark(11) + "\nAAAA\n-----END RSA PRIVATE KEY-----",
		"/usr/bin/app --password " + mark(12) + " --port 80",
		"/usr/bin/app --token=" + mark(13),
		`/usr/bin/app --auth "Bearer ` + mark(14) + `"`,
		"db_password: " + mark(15),
		`{"client_secret": "` + mark(16) + `"}`,
		"push with ghp_" + mark(17) + pad,
		"slack xoxb-1234-5678-" + mark(18),
		"key id AKIA" + strings.ToUpper(mark(19)) + "ABCDEFGH",
		"jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0." + mark(20) + "sig",
		"maps AIza" + mark(21) + strings.Repeat("B", 27),
		"stripe sk_live_" + mark(22) + "abcdefgh",
		"gitlab glpat-" + mark(23) + "abcdefghijkl",
		"npm npm_" + mark(24) + strings.Repeat("c", 28),
		"X-Api-Key: " + mark(25),
		"Cookie: session=" + mark(26),
		"export STRIPE_API_KEY=" + mark(27),
		"SSH_KEY=" + mark(28),
		"/usr/bin/oauth --client-secret " + mark(29),
		"PGPASSWORD=" + mark(30),
		"x-vault-token: " + mark(31),
		"SENTRY_DSN=https://" + mark(32) + "@sentry.io/1",
	}
}

// TestRedactionCorpus plants more than 30 kinds of secret where a
// runbook reads them with real built-ins on a real target: a file read
// with read_file and run(["cat"]), the environment (environ and
// run(["env"])), command lines (run's argv), an HTTP server's answer
// echoing Authorization and redirecting to a URL with userinfo, a URL
// argument with a password, params, labels, log(), finding(), verdict()
// and fail(). None of the secret values may survive in the transcript
// file, the events, or the text, markdown and json reports.
func TestRedactionCorpus(t *testing.T) {
	corpus := secretCorpus()
	var env []string
	for _, l := range corpus {
		if i := strings.Index(l, "="); i > 0 && !strings.ContainsAny(l[:i], " :/") {
			env = append(env, l)
		}
	}
	env = append(env, "MYSQL_ROOT_PASSWORD="+mark(40))
	tg := nodetest.Start(t, nodetest.Options{Env: env})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			w.Header().Set("Location", "https://admin:"+mark(41)+"@internal.example.com/")
			w.WriteHeader(http.StatusFound)
			return
		}
		fmt.Fprintf(w, "you sent Authorization: %s\nand X-Api-Key: %s\n", r.Header.Get("Authorization"), r.Header.Get("X-Api-Key"))
	}))
	defer srv.Close()
	dir := t.TempDir()
	rb := filepath.Join(dir, "corpus.star")
	src := `
runbook(name = "corpus", summary = "Reads secrets every way a runbook can.",
    params = [param("pid", type = "int"), param("dsn"), param("url"), param("file")])

def main(p):
    h = enter_ns(p.pid)
    run(["sh", "-c", "cat > " + p.file], ns = h, stdin = CORPUS)
    f = read_file(p.file, ns = h)
    log(f.content)
    c = run(["cat", p.file], ns = h)
    log(c.stdout)
    e = environ(ns = h)
    log(str(e.env))
    envout = run(["env"], ns = h)
    argv = run(["sh", "-c", "echo $@", "app", "--token", "` + mark(42) + `", "--password=` + mark(43) + `"], ns = h)
    log(argv.stdout)
    echo = http_probe(p.url + "/echo", headers = {"Authorization": "Bearer ` + mark(44) + `", "X-Api-Key": "` + mark(45) + `"})
    log(str(echo))
    redir = http_probe(p.url + "/redirect")
    log(str(redir))
    withpw = http_probe(p.url.replace("http://", "http://user:` + mark(46) + `@") + "/echo")
    finding("critical", "login used token=` + mark(47) + `", evidence = {"dsn": p.dsn, "out": envout.stdout})
    verdict("sent Bearer ` + mark(48) + ` to " + p.dsn)
    fail("could not log in with password=` + mark(49) + `")
`
	src = strings.Replace(src, "CORPUS", fmt.Sprintf("%q", strings.Join(corpus, "\n")+"\n"), 1)
	if err := os.WriteFile(rb, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	tpath := filepath.Join(dir, "t.jsonl")
	w, err := transcript.Create(tpath)
	if err != nil {
		t.Fatal(err)
	}
	res := engine.Run(context.Background(), rb, engine.Options{
		Specs: append(std.Specs(), node.Specs()...), Writer: w,
		Params: map[string]any{"pid": int64(tg.PID), "dsn": "postgres://shop:" + mark(50) + "@db/shop", "url": srv.URL, "file": "/tmp/corpus.txt"},
		Labels: map[string]string{"slack_webhook": "https://hooks.slack.com/services/" + mark(51), "alertname": "X token=" + mark(52)},
	})
	w.Close()
	if res.Err == nil || !strings.Contains(res.Err.Error(), "could not log in") {
		t.Fatalf("run: %v\n%s", res.Err, res.Backtrace)
	}
	for _, e := range res.Events {
		if e.Type == transcript.TypeCall && e.Error != nil {
			t.Errorf("%s failed: %s", e.Builtin, e.Error.Message)
		}
	}
	onDisk, err := os.ReadFile(tpath)
	if err != nil {
		t.Fatal(err)
	}
	// The runbook's own source is recorded verbatim so that it replays:
	// the secrets this test writes into it as literals are not workload
	// data, and are blanked before the search.
	tr, err := transcript.ReadFile(tpath)
	if err != nil && !errors.Is(err, transcript.ErrTruncated) {
		t.Fatal(err)
	}
	scanned := onDisk
	for _, f := range tr.Header.Files {
		src, _ := json.Marshal(f.Source)
		scanned = bytes.Replace(scanned, src[1:len(src)-1], []byte("(runbook source)"), 1)
	}
	outputs := map[string][]byte{"transcript": scanned}
	for _, f := range report.Formats {
		var b bytes.Buffer
		report.Render(&b, res.Transcript(), f)
		outputs["report "+f] = b.Bytes()
	}
	outputs["error"] = []byte(res.Err.Error())
	kinds := 0
	for i := 1; i <= 52; i++ {
		if !strings.Contains(src, mark(i)) && !strings.Contains(strings.Join(env, " "), mark(i)) && i < 50 && i != 41 {
			continue
		}
		kinds++
		for where, b := range outputs {
			if bytes.Contains(b, []byte(mark(i))) {
				at := bytes.Index(b, []byte(mark(i)))
				t.Errorf("secret %d (%s) survives in the %s: …%s…", i, kindOf(corpus, i), where, b[max(0, at-60):min(len(b), at+20)])
			}
		}
	}
	if kinds < 30 {
		t.Fatalf("only %d kinds planted", kinds)
	}
	// The run still saw what it needed: the file was read and the probe answered.
	if !bytes.Contains(onDisk, []byte(`MYSQL_PWD=\u003credacted\u003e`)) || !bytes.Contains(onDisk, []byte(`you sent Authorization: \u003credacted\u003e`)) {
		t.Errorf("the transcript lost the non-secret context:\n%s", onDisk)
	}
	t.Logf("%d kinds of secret planted; none in %d outputs", kinds, len(outputs))
}

func kindOf(corpus []string, i int) string {
	for _, l := range corpus {
		if strings.Contains(l, mark(i)) {
			if len(l) > 40 {
				return l[:40]
			}
			return l
		}
	}
	return "planted by the runbook"
}
