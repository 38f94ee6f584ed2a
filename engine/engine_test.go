package engine_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// world is a tiny mutable system the test built-ins observe and change.
type world struct {
	values map[string]string
	reads  int
}

func (w *world) specs() []*engine.Spec {
	return []*engine.Spec{
		{
			Name:   "read_value",
			Doc:    "Reads a value.",
			Params: []engine.Param{{Name: "key", Type: "string", Required: true}, {Name: "missing_ok", Type: "bool", Default: false}},
			Effect: engine.Read,
			Run: func(ctx context.Context, c *engine.Call) (any, error) {
				w.reads++
				v, ok := w.values[c.Args.String("key")]
				if !ok {
					if c.Args.Bool("missing_ok") {
						return nil, nil
					}
					return nil, engine.Errorf(engine.KindNotFound, "read_value: no key %q", c.Args.String("key"))
				}
				return map[string]any{"key": c.Args.String("key"), "value": v, "password": "hunter2"}, nil
			},
		},
		{
			Name:   "write_value",
			Doc:    "Writes a value.",
			Params: []engine.Param{{Name: "key", Type: "string", Required: true}, {Name: "value", Type: "string", Required: true}},
			Effect: engine.Write,
			Plans:  true,
			Run: func(ctx context.Context, c *engine.Call) (any, error) {
				k, v := c.Args.String("key"), c.Args.String("value")
				old := w.values[k]
				applied := c.DryRun == engine.DryRunNone
				if applied {
					w.values[k] = v
				}
				c.RecordMutation(engine.Mutation{Target: "value " + k, Before: []byte(fmt.Sprintf("%q", old)), Applied: applied})
				return map[string]any{"applied": applied, "old": old}, nil
			},
		},
	}
}

const diagnose = `
runbook(
    name = "check-value",
    summary = "Checks a value and fixes it.",
    params = [
        param("key", doc = "the key to check"),
        param("want", default = "good", doc = "the healthy value"),
    ],
)

def inspect(p):
    return read_value(p.key)

def main(p):
    r = step("inspect", inspect, p)
    log("value is", r.value, "token=abc", "DB_PASSWORD=x")
    if r.value != p.want:
        finding("critical", "value %s is %s, want %s" % (p.key, r.value, p.want), evidence = {"seen": r.value})
        w = step("fix", lambda: write_value(p.key, p.want))
        if w.applied:
            verdict("fixed %s" % p.key)
        else:
            verdict("would fix %s (not applied)" % p.key)
    else:
        verdict("healthy")
`

type yes struct{}

func (yes) Approve(context.Context, engine.Approval) error { return nil }

func writeFile(t *testing.T, name, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func record(t *testing.T, path string, w *world, opts engine.Options) (*engine.Result, string) {
	t.Helper()
	tp := filepath.Join(t.TempDir(), "run.jsonl")
	tw, err := transcript.Create(tp)
	if err != nil {
		t.Fatal(err)
	}
	opts.Specs, opts.Writer = w.specs(), tw
	res := engine.Run(context.Background(), path, opts)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return res, tp
}

func render(t *testing.T, tr *transcript.Transcript) string {
	t.Helper()
	var b bytes.Buffer
	if err := report.Render(&b, tr, "text"); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRecordReplayRoundTrip(t *testing.T) {
	path := writeFile(t, "check.star", diagnose)
	w := &world{values: map[string]string{"x": "bad"}}
	res, tp := record(t, path, w, engine.Options{Params: map[string]any{"key": "x"}, Approver: yes{}})
	if res.Err != nil {
		t.Fatalf("run: %v\n%s", res.Err, res.Backtrace)
	}
	if w.values["x"] != "good" {
		t.Fatalf("write_value did not apply: %v", w.values)
	}
	live := render(t, res.Transcript())
	if !strings.Contains(live, "fixed x") || !strings.Contains(live, "CRITICAL") {
		t.Fatalf("report lacks verdict or finding:\n%s", live)
	}
	if strings.Contains(live, "hunter2") {
		t.Fatalf("secret reached the report:\n%s", live)
	}
	raw, _ := os.ReadFile(tp)
	_, raw, _ = bytes.Cut(raw, []byte("\n")) // the header holds the runbook's source
	if bytes.Contains(raw, []byte("hunter2")) || bytes.Contains(raw, []byte("token=abc")) || bytes.Contains(raw, []byte("PASSWORD=x")) {
		t.Fatalf("secret reached the transcript:\n%s", raw)
	}
	tr, err := transcript.ReadFile(tp)
	if err != nil {
		t.Fatal(err)
	}
	if got := render(t, tr); got != live {
		t.Fatalf("report from file differs from live report:\n%s\n---\n%s", got, live)
	}
	// Replay with no world at all: the built-ins must not run.
	dead := &world{}
	rep := engine.Run(context.Background(), path, engine.Options{Specs: dead.specs(), Replay: tr, Loader: &engine.Loader{Recorded: sources(tr)}})
	if rep.Err != nil {
		t.Fatalf("replay: %v", rep.Err)
	}
	if dead.reads != 0 {
		t.Fatalf("replay ran a built-in %d times", dead.reads)
	}
	if got := render(t, rep.Transcript()); got != live {
		t.Fatalf("replayed report differs:\n%s\n---\n%s", got, live)
	}
}

func sources(tr *transcript.Transcript) map[string]string {
	m := map[string]string{}
	for _, f := range tr.Header.Files {
		m[f.Path] = f.Source
	}
	return m
}

func TestReplayDivergence(t *testing.T) {
	path := writeFile(t, "check.star", diagnose)
	w := &world{values: map[string]string{"x": "bad"}}
	_, tp := record(t, path, w, engine.Options{Params: map[string]any{"key": "x"}, Approver: yes{}})
	tr, err := transcript.ReadFile(tp)
	if err != nil {
		t.Fatal(err)
	}
	edited := writeFile(t, "check.star", strings.Replace(diagnose, "write_value(p.key, p.want)", "write_value(p.key, \"other\")", 1))
	rep := engine.Run(context.Background(), edited, engine.Options{Specs: w.specs(), Replay: tr})
	var div *engine.DivergenceError
	if !errors.As(rep.Err, &div) {
		t.Fatalf("want a divergence, got %v", rep.Err)
	}
	if div.Seq != 7 || !strings.Contains(div.Pos, "check.star:19:44") || !strings.Contains(div.Expected, `"good"`) || !strings.Contains(div.Actual, `"other"`) {
		t.Fatalf("divergence names the wrong place: %+v", div)
	}
}

func TestDryRunPlansAndRefuses(t *testing.T) {
	path := writeFile(t, "check.star", diagnose)
	w := &world{values: map[string]string{"x": "bad"}}
	res, _ := record(t, path, w, engine.Options{Params: map[string]any{"key": "x"}, DryRun: engine.DryRunClient, Approver: yes{}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if w.values["x"] != "bad" {
		t.Fatal("dry run changed the world")
	}
	// No approver: the mutation is refused, as a value.
	res, _ = record(t, path, w, engine.Options{Params: map[string]any{"key": "x"}})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if w.values["x"] != "bad" {
		t.Fatal("unapproved mutation ran")
	}
	if got := render(t, res.Transcript()); !strings.Contains(got, "refused") {
		t.Fatalf("report does not show the refusal:\n%s", got)
	}
}

func TestBadInput(t *testing.T) {
	w := &world{values: map[string]string{}}
	cases := []struct {
		name, src string
		params    map[string]any
		want      string
		usage     bool
	}{
		{"syntax", "def main(p)\n  pass\n", nil, "bad.star:2:1: got newline, want ':'", true},
		{"unknown param", diagnose, map[string]any{"key": "x", "nope": "1"}, `unknown param "nope"; its params: key (string, required), want (string, default good)`, true},
		{"missing param", diagnose, map[string]any{}, `missing required param "key"`, true},
		{"no main", "x = 1\n", nil, "defines no main(p)", true},
		{"load-time call", "read_value('x')\ndef main(p):\n  pass\n", nil, "read_value: called while loading", true},
		{"unknown arg", "def main(p):\n  read_value('x', colour='red')\n", nil, `read_value: unknown argument "colour" (arguments: key*, missing_ok)`, false},
		{"wrong type", "def main(p):\n  read_value(3)\n", nil, `read_value: argument "key": want string, got int`, false},
		{"not found", "def main(p):\n  read_value('zz')\n", nil, `read_value: no key "zz"`, false},
		{"fail", "def main(p):\n  fail('broken')\n", nil, "fail: broken", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeFile(t, "bad.star", c.src)
			res := engine.Run(context.Background(), path, engine.Options{Specs: w.specs(), Params: c.params})
			if res.Err == nil || !strings.Contains(res.Err.Error(), c.want) {
				t.Fatalf("error = %v, want it to contain %q", res.Err, c.want)
			}
			var u *engine.UsageError
			if errors.As(res.Err, &u) != c.usage {
				t.Fatalf("usage error = %v, want %v (%v)", !c.usage, c.usage, res.Err)
			}
		})
	}
}

func TestCancelledRunWritesFooter(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	blocker := &engine.Spec{Name: "block", Effect: engine.Read, Run: func(ctx context.Context, c *engine.Call) (any, error) {
		cancel()
		<-ctx.Done()
		return nil, ctx.Err()
	}}
	path := writeFile(t, "c.star", "def main(p):\n  step('wait', block)\n  log('never')\n")
	tp := filepath.Join(t.TempDir(), "c.jsonl")
	tw, _ := transcript.Create(tp)
	res := engine.Run(ctx, path, engine.Options{Specs: []*engine.Spec{blocker}, Writer: tw})
	tw.Close()
	var ce *engine.CancelledError
	if !errors.As(res.Err, &ce) {
		t.Fatalf("want cancelled, got %v", res.Err)
	}
	tr, err := transcript.ReadFile(tp)
	if err != nil {
		t.Fatal(err)
	}
	if tr.Footer.Status != transcript.StatusCancelled {
		t.Fatalf("footer status %q", tr.Footer.Status)
	}
	for _, e := range tr.Events {
		if e.Type == transcript.TypePrint {
			t.Fatal("the run went on after cancellation")
		}
	}
}
