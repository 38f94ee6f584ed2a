package engine_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
)

const degrading = `
runbook(name = "degrade", summary = "Goes on without a missing value.")

def main(p):
    got = attempt(read_value, "absent")
    if got.ok:
        fail("read of an absent key succeeded")
    log("kind", got.kind)
    have = attempt(read_value, key = "x")
    verdict("x is %s; not checked: absent (%s: %s)" % (have.value.value, got.kind, got.error))
`

// TestAttemptTurnsBuiltinFailuresIntoValues: attempt returns a failed
// built-in's kind and message, the run goes on, the failure is recorded,
// and a replay takes the same branch without the world.
func TestAttemptTurnsBuiltinFailuresIntoValues(t *testing.T) {
	path := writeFile(t, "degrade.star", degrading)
	w := &world{values: map[string]string{"x": "good"}}
	res, tp := record(t, path, w, engine.Options{})
	if res.Err != nil {
		t.Fatalf("run: %v", res.Err)
	}
	want := `x is good; not checked: absent (not_found: read_value: no key "absent")`
	tr, err := transcript.ReadFile(tp)
	if err != nil {
		t.Fatal(err)
	}
	var verdict string
	var recordedErr bool
	for _, e := range tr.Events {
		if e.Type == transcript.TypeVerdict {
			verdict = e.Summary
		}
		if e.Type == transcript.TypeCall && e.Error != nil && e.Error.Kind == "not_found" {
			recordedErr = true
		}
	}
	if verdict != want || !recordedErr || tr.Footer.Status != transcript.StatusOK {
		t.Fatalf("verdict %q (want %q), failure recorded %v, status %q", verdict, want, recordedErr, tr.Footer.Status)
	}
	if rep := render(t, tr); !strings.Contains(rep, "Not checked (failed calls the runbook went on without)\n  #1   read_value: no key \"absent\"") {
		t.Fatalf("the report does not list the failure the run went on without:\n%s", rep)
	}
	dead := &world{}
	rep := engine.Run(context.Background(), path, engine.Options{Specs: dead.specs(), Replay: tr, Loader: &engine.Loader{Recorded: sources(tr)}})
	if rep.Err != nil || dead.reads != 0 {
		t.Fatalf("replay: %v, %d live reads", rep.Err, dead.reads)
	}
}

// TestAttemptKeepsRunbookMistakes: fail() and a bad call still end the run.
func TestAttemptKeepsRunbookMistakes(t *testing.T) {
	for name, src := range map[string]string{
		"fail":     "def main(p):\n    attempt(fail, \"stop here\")\n",
		"bad args": "def main(p):\n    attempt(read_value, nope = 1)\n",
		"not fn":   "def main(p):\n    attempt(3)\n",
	} {
		t.Run(name, func(t *testing.T) {
			path := writeFile(t, "m.star", "runbook(name = \"m\", summary = \"m\")\n"+src)
			res, _ := record(t, path, &world{}, engine.Options{})
			if res.Err == nil {
				t.Fatal("the run went on")
			}
		})
	}
}

// TestAddTimeoutParams: a built-in with a default Timeout gets a timeout
// argument that bounds one call; one with its own keeps it.
func TestAddTimeoutParams(t *testing.T) {
	slow := &engine.Spec{Name: "slow", Doc: "Sleeps.", Effect: engine.Read, Timeout: time.Minute,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}
	own := &engine.Spec{Name: "own", Effect: engine.Read, Timeout: time.Second,
		Params: []engine.Param{{Name: "timeout", Type: "duration", Default: "1s"}}}
	engine.AddTimeoutParams([]*engine.Spec{slow, own})
	if len(slow.Params) != 1 || slow.Params[0].Name != "timeout" || slow.Params[0].Default != "1m0s" || len(own.Params) != 1 {
		t.Fatalf("params: slow %+v, own %+v", slow.Params, own.Params)
	}
	path := writeFile(t, "s.star", "runbook(name = \"s\", summary = \"s\")\ndef main(p):\n    slow(timeout = \"200ms\")\n")
	t0 := time.Now()
	res := engine.Run(context.Background(), path, engine.Options{Specs: []*engine.Spec{slow}})
	if res.Err == nil || !strings.Contains(res.Err.Error(), "timed out after 200ms") || time.Since(t0) > 10*time.Second {
		t.Fatalf("err %v after %s; want a timeout after 200ms", res.Err, time.Since(t0))
	}
}

// TestDeadlineInReport: a run's deadline (kdiag run --timeout, a route's
// timeout) is recorded in the header and shown in the report.
func TestDeadlineInReport(t *testing.T) {
	path := writeFile(t, "w.star", "runbook(name = \"w\", summary = \"w\")\ndef main(p):\n    verdict(\"ok\")\n")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w := &world{}
	res := engine.Run(ctx, path, engine.Options{Specs: w.specs()})
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if d := res.Header.Deadline; d != "10m0s" {
		t.Fatalf("header deadline %q", d)
	}
	if rep := render(t, res.Transcript()); !strings.Contains(rep, "Deadline  10m0s after the start") {
		t.Fatalf("report:\n%s", rep)
	}
}
