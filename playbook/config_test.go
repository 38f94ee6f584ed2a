package playbook_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/playbook"
)

// route is a valid route body with one field replaced or added.
const validRoute = `routes:
  - name: pods
    match: {alertname: KubePodNotReady}
    runbook: RUNBOOK
    params:
      pod: "{{ .Labels.pod }}"
`

// TestConfigErrors checks that Load refuses bad configs with an error
// naming the file, the line and what is wrong.
func TestConfigErrors(t *testing.T) {
	auth := "auth:\n  token_env: KDIAG_TEST_TOKEN\n"
	cases := []struct{ name, yaml, want string }{
		{"empty", "", "playbooks.yaml: empty config"},
		{"syntax", auth + "routes: [\n", "playbooks.yaml:3: did not find expected node content"},
		{"unknown top-level field", auth + "routs: []\n", `playbooks.yaml:3: unknown field "routs" in the config (fields: listen,`},
		{"unknown route field", auth + strings.Replace(validRoute, "    match:", "    matches:", 1), `playbooks.yaml:5: unknown field "matches" in a route (fields: name, match, match_re,`},
		{"unknown auth field", "auth:\n  token: x\n" + validRoute, `playbooks.yaml:2: unknown field "token" in auth (fields: token_file,`},
		{"bad duration", auth + "dedupe_window: 10x\n" + validRoute, "playbooks.yaml:3: cannot unmarshal !!str `10x` into time.Duration"},
		{"no auth", validRoute, "playbooks.yaml:1: auth: no bearer token or HMAC secret configured"},
		{"insecure and token", "auth:\n  token_env: X\n  insecure: true\n" + validRoute, "playbooks.yaml:3: auth.insecure: true contradicts"},
		{"token twice", "auth:\n  token_env: X\n  token_file: y\n" + validRoute, "playbooks.yaml:2: auth: give token_file or token_env, not both"},
		{"require", "auth:\n  token_env: X\n  require: most\n" + validRoute, `playbooks.yaml:3: auth.require: unknown value "most" (want any or all)`},
		{"no routes", auth, "playbooks.yaml:1: no routes: add at least one under routes:"},
		{"negative concurrency", auth + "concurrency: -1\n" + validRoute, "playbooks.yaml:3: concurrency must be at least 1"},
		{"external url", auth + "external_url: kdiag.svc\n" + validRoute, `playbooks.yaml:3: external_url: "kdiag.svc" is not an absolute http(s) URL`},
		{"notify without url", auth + "notify: {timeout: 5s}\n" + validRoute, "playbooks.yaml:3: notify: url is required"},
		{"no runbook", auth + strings.Replace(validRoute, "    runbook: RUNBOOK\n", "", 1), `playbooks.yaml:4: route "pods": runbook is required`},
		{"bad template", auth + strings.Replace(validRoute, "{{ .Labels.pod }}", "{{ .Labels.pod ", 1), `playbooks.yaml:8: route "pods": bad template: template: params.pod:1: unclosed action`},
		{"template field", auth + strings.Replace(validRoute, ".Labels.pod", ".Label.pod", 1), `playbooks.yaml:8: route "pods": bad template: template: params.pod:1:9: executing "params.pod" at <.Label.pod>: can't evaluate field Label in type playbook.TemplateData`},
		{"unknown policy", auth + validRoute + "    mutations: yes\n", `playbooks.yaml:9: route "pods": mutations: unknown policy "yes" (want never, dry-run or allow)`},
		{"allow without list", auth + validRoute + "    mutations: allow\n", `playbooks.yaml:9: route "pods": mutations: allow needs allow_builtins`},
		{"list without allow", auth + validRoute + "    mutations: dry-run\n    allow_builtins: [restart]\n", `playbooks.yaml:10: route "pods": allow_builtins needs mutations: allow (mutations is dry-run)`},
		{"bad regexp", auth + validRoute + "    match_re: {pod: \"web-(\"}\n", "playbooks.yaml:9: route \"pods\": match_re.pod: error parsing regexp"},
		{"duplicate names", auth + validRoute + "  - name: pods\n    runbook: x\n", `playbooks.yaml:9: route "pods": the name is also used by route 1`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := playbook.Parse("playbooks.yaml", []byte(c.yaml))
			if err == nil || !strings.HasPrefix(err.Error(), c.want) {
				t.Fatalf("error:\n  %v\nwant prefix:\n  %s", err, c.want)
			}
		})
	}
}

// TestConfigDefaults checks the defaults of a minimal config.
func TestConfigDefaults(t *testing.T) {
	c, err := playbook.Parse("playbooks.yaml", []byte("auth:\n  token_env: X\n"+validRoute))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Routes[0]
	if c.Listen != ":8080" || c.MaxBodyBytes != 1<<20 || c.Concurrency != 2 || c.Queue != 16 || c.DedupeWindow != 10*time.Minute ||
		c.Executor != "local" || c.Auth.HMACHeader != "X-Kdiag-Signature" || c.Auth.Require != "any" ||
		r.Mutations != "never" || r.Timeout != 10*time.Minute {
		t.Fatalf("defaults: %+v %+v", c, r)
	}
}

// TestNewErrors checks the errors New finds against the built-ins, the
// runbooks and the environment, each naming the file and line.
func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.star")
	os.WriteFile(broken, []byte("def main(p):\n    sleep(\n"), 0o644)
	t.Setenv("KDIAG_TEST_TOKEN", testToken)
	os.Unsetenv("KDIAG_NO_SUCH_VAR")
	auth := "auth:\n  token_env: KDIAG_TEST_TOKEN\n"
	pod := testdata(t, "pod-alert.star")
	withRunbook := func(rb string) string { return strings.Replace(validRoute, "RUNBOOK", rb, 1) }
	cases := []struct{ name, yaml, want string }{
		{"unknown runbook", auth + withRunbook("no-such-runbook"), `playbooks.yaml:6: route "pods": runbook no-such-runbook: no runbook by that name (known: `},
		{"missing file", auth + withRunbook("./nope.star"), `playbooks.yaml:6: route "pods": runbook ` + filepath.Join(dir, "nope.star") + ": no such file"},
		{"broken runbook", auth + withRunbook("broken.star"), `playbooks.yaml:6: route "pods": runbook broken.star does not load: ` + broken + ":3:1: got outdent, want primary expression"},
		{"unknown param", auth + withRunbook(pod) + "      podname: x\n", `playbooks.yaml:9: route "pods": runbook pod-alert has no param "podname"; its params: pod (string, required), namespace`},
		{"missing param", auth + strings.Replace(withRunbook(pod), "      pod:", "      namespace:", 1), `playbooks.yaml:7: route "pods": runbook pod-alert needs param "pod"; add it under params: (e.g. pod: "{{ .Labels.pod }}")`},
		{"not a write built-in", auth + withRunbook(pod) + "    mutations: allow\n    allow_builtins: [now]\n", `playbooks.yaml:10: route "pods": allow_builtins: "now" is not a write built-in (write built-ins: set_flag, drop_flag)`},
		{"job executor", auth + "executor: job\n" + withRunbook(pod), `playbooks.yaml:3: executor job needs a Kubernetes client: set Options.Executor (job.New of package playbook/job; kdiag serve does)`},
		{"token file", "auth:\n  token_file: no-such-token\n" + withRunbook(pod), "playbooks.yaml:2: auth.token_file: open " + filepath.Join(dir, "no-such-token") + ": no such file or directory"},
		{"token env", "auth:\n  token_env: KDIAG_NO_SUCH_VAR\n" + withRunbook(pod), "playbooks.yaml:2: auth.token_env: environment variable KDIAG_NO_SUCH_VAR is not set"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "playbooks.yaml")
			os.WriteFile(path, []byte(c.yaml), 0o644)
			cfg, err := playbook.Load(path)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			_, err = playbook.New(cfg, playbook.Options{Specs: specs(world(t.TempDir())), StoreDir: t.TempDir()})
			want := strings.Replace(c.want, "playbooks.yaml", path, 1)
			if err == nil || !strings.HasPrefix(err.Error(), want) {
				t.Fatalf("error:\n  %v\nwant prefix:\n  %s", err, want)
			}
		})
	}
}
