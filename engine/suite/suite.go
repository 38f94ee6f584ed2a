// Package suite tests runbooks the way a team does in CI: every recording
// under a runbook's testdata/ is replayed against the current runbook and
// its verdict, findings and changes compared with the recorded
// expectation; *_test.star files run their test_* functions.
package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"go.starlark.net/starlark"
)

// Expectation is what a recording must still produce: the golden file
// beside it, NAME.expect.json.
type Expectation struct {
	Status   string          `json:"status"`
	Verdict  string          `json:"verdict"`
	Findings []ExpectFinding `json:"findings"`
	Changes  []report.Change `json:"changes"`
}

// ExpectFinding is a finding without its evidence.
type ExpectFinding struct {
	Severity string `json:"severity"`
	Summary  string `json:"summary"`
}

// Outcome is the result of one test.
type Outcome struct {
	Name string
	Err  error
}

// Options configure a suite run.
type Options struct {
	Specs  []*engine.Spec
	Loader *engine.Loader
	// Update rewrites the expectations instead of comparing.
	Update bool
}

// Run tests every runbook in dir: DIR/NAME.star against
// DIR/testdata/NAME/*.jsonl, and every *_test.star under dir.
func Run(ctx context.Context, dir string, opts Options) ([]Outcome, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("test: %w", err)
	}
	var out []Outcome
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !strings.HasSuffix(n, ".star") || strings.HasSuffix(n, "_test.star") {
			continue
		}
		name := strings.TrimSuffix(n, ".star")
		recs, _ := filepath.Glob(filepath.Join(dir, "testdata", name, "*.jsonl"))
		sort.Strings(recs)
		for _, rec := range recs {
			err := replayCase(ctx, filepath.Join(dir, n), rec, opts)
			out = append(out, Outcome{Name: name + "/" + strings.TrimSuffix(filepath.Base(rec), ".jsonl"), Err: err})
		}
	}
	tests, err := findStarTests(dir)
	if err != nil {
		return out, err
	}
	for _, f := range tests {
		out = append(out, starTests(f, opts)...)
	}
	return out, nil
}

// replayCase replays one recording against the current runbook.
func replayCase(ctx context.Context, runbook, rec string, opts Options) error {
	t, err := transcript.ReadFile(rec)
	if err != nil {
		return err
	}
	res := engine.Run(ctx, runbook, engine.Options{Specs: opts.Specs, Loader: opts.Loader, Replay: t})
	var div *engine.DivergenceError
	var usage *engine.UsageError
	if errors.As(res.Err, &div) || errors.As(res.Err, &usage) || res.Header == nil {
		return res.Err
	}
	got := expectation(res.Transcript())
	b, _ := json.MarshalIndent(got, "", "  ")
	b = append(b, '\n')
	golden := strings.TrimSuffix(rec, ".jsonl") + ".expect.json"
	if opts.Update {
		return os.WriteFile(golden, b, 0o644)
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		return fmt.Errorf("%v (create it with kdiag test --update)", err)
	}
	if !bytes.Equal(want, b) {
		return fmt.Errorf("%s: the runbook now concludes differently from the recording's expectation:\n--- want\n%s--- got\n%s(accept with kdiag test --update)", golden, want, b)
	}
	return nil
}

func expectation(t *transcript.Transcript) Expectation {
	r := report.Build(t)
	e := Expectation{Status: r.Status, Verdict: r.Verdict, Findings: []ExpectFinding{}, Changes: r.Changes}
	for _, f := range r.Findings {
		e.Findings = append(e.Findings, ExpectFinding{Severity: f.Severity, Summary: f.Summary})
	}
	for i := range e.Changes {
		e.Changes[i].Detail = ""
	}
	return e
}

func findStarTests(dir string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "testdata" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, "_test.star") {
			files = append(files, p)
		}
		return nil
	})
	return files, err
}

// starTests runs the test_* functions of one *_test.star file.
func starTests(path string, opts Options) []Outcome {
	globals, thread, err := engine.LoadModule(path, engine.Options{Specs: opts.Specs, Loader: opts.Loader}, starlark.StringDict{"assert": Assert})
	if err != nil {
		return []Outcome{{Name: path, Err: err}}
	}
	var names []string
	for k := range globals {
		if strings.HasPrefix(k, "test_") {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var out []Outcome
	for _, n := range names {
		fn, ok := globals[n].(starlark.Callable)
		if !ok {
			continue
		}
		_, err := starlark.Call(thread, fn, nil, nil)
		if ee, ok := err.(*starlark.EvalError); ok {
			err = errors.New(ee.Backtrace())
		}
		out = append(out, Outcome{Name: path + ":" + n, Err: err})
	}
	return out
}
