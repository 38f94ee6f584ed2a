// Package report renders a transcript as a report for people (text,
// markdown) or machines (json). A report depends only on the transcript,
// so a replay that makes the same calls renders the same report.
package report

import (
	"bytes"
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
)

// Report is the structured content of a report.
type Report struct {
	Runbook    string               `json:"runbook"`
	Path       string               `json:"path"`
	Params     map[string]any       `json:"params"`
	Mode       string               `json:"mode"`
	Start      string               `json:"start,omitempty"`
	Deadline   string               `json:"deadline,omitempty"`
	Status     string               `json:"status"`
	Message    string               `json:"message,omitempty"`
	DurationMS float64              `json:"duration_ms"`
	Calls      int                  `json:"calls"`
	Writes     int                  `json:"writes"`
	Steps      []Step               `json:"steps"`
	Findings   []Finding            `json:"findings"`
	Changes    []Change             `json:"changes"`
	Verdict    string               `json:"verdict,omitempty"`
	Log        []string             `json:"log,omitempty"`
	Cleanups   []transcript.Cleanup `json:"cleanups,omitempty"`
	// Sources are the pinned repositories the run's files came from.
	Sources []Source `json:"sources,omitempty"`
	// Unchecked are the failed calls the runbook went on without (through
	// attempt): what the run could not check, and why.
	Unchecked []Call `json:"unchecked,omitempty"`
}

// Source is a pinned repository a run loaded files from.
type Source struct {
	Repo   string   `json:"repo"`
	URL    string   `json:"url"`
	Commit string   `json:"commit"`
	Files  []string `json:"files"`
}

// Step is one step with the calls made inside it.
type Step struct {
	Name    string `json:"name"`
	Status  string `json:"status"`
	Message string `json:"message,omitempty"`
	Calls   []Call `json:"calls"`
}

// Call is one built-in call, summarized.
type Call struct {
	Seq        int     `json:"seq"`
	Builtin    string  `json:"builtin"`
	Pos        string  `json:"pos"`
	Args       string  `json:"args"`
	Outcome    string  `json:"outcome"`
	Error      string  `json:"error,omitempty"`
	AtMS       float64 `json:"at_ms"`
	DurationMS float64 `json:"duration_ms"`
}

// Finding is a recorded finding.
type Finding struct {
	Severity string          `json:"severity"`
	Summary  string          `json:"summary"`
	Step     string          `json:"step,omitempty"`
	Evidence json.RawMessage `json:"evidence,omitempty"`
}

// Change is a recorded mutation, or a refused or planned one.
type Change struct {
	Seq     int    `json:"seq"`
	Builtin string `json:"builtin"`
	Target  string `json:"target,omitempty"`
	State   string `json:"state"` // applied, planned, refused, failed
	Detail  string `json:"detail,omitempty"`
}

// Build assembles the report of a transcript. It never panics: a
// transcript without a header (which Read never returns) reports as an
// empty, incomplete run.
func Build(t *transcript.Transcript) *Report {
	if t == nil {
		t = &transcript.Transcript{}
	}
	h := t.Header
	if h == nil {
		h = &transcript.Event{Type: transcript.TypeHeader}
	}
	r := &Report{Runbook: h.Name, Path: h.Runbook, Params: h.Params, Mode: h.Mode, Status: "incomplete", Deadline: Printable(h.Deadline),
		Steps: []Step{}, Findings: []Finding{}, Changes: []Change{}}
	if h.Start != nil {
		r.Start = h.Start.UTC().Format(time.RFC3339)
	}
	for _, f := range h.Files {
		if f.Repo == "" {
			continue
		}
		if n := len(r.Sources); n > 0 && r.Sources[n-1].Repo == f.Repo && r.Sources[n-1].Commit == f.Commit {
			r.Sources[n-1].Files = append(r.Sources[n-1].Files, f.Path)
			continue
		}
		r.Sources = append(r.Sources, Source{Repo: f.Repo, URL: f.URL, Commit: f.Commit, Files: []string{f.Path}})
	}
	steps := map[string]int{}
	stepOf := func(name string) *Step {
		i, ok := steps[name]
		if !ok {
			i = len(r.Steps)
			steps[name] = i
			r.Steps = append(r.Steps, Step{Name: name, Status: "running", Calls: []Call{}})
		}
		return &r.Steps[i]
	}
	for _, e := range t.Events {
		if e == nil {
			continue
		}
		switch e.Type {
		case transcript.TypeStepStart:
			stepOf(e.Step)
		case transcript.TypeStepEnd:
			s := stepOf(e.Step)
			s.Status, s.Message = e.Status, e.Message
		case transcript.TypeCall:
			r.Calls++
			c := Call{Seq: e.Seq, Builtin: e.Builtin, Pos: e.Pos, Args: Short(e.Args, 70), AtMS: e.AtMS, DurationMS: e.DurationMS}
			if e.Error != nil {
				c.Error = e.Error.Message
				r.Unchecked = append(r.Unchecked, c)
			} else {
				c.Outcome = Short(e.Result, 90)
			}
			stepOf(e.Step).Calls = append(stepOf(e.Step).Calls, c)
			if e.Effect == "write" {
				r.Writes++
				r.Changes = append(r.Changes, change(e))
			}
		case transcript.TypeFinding:
			r.Findings = append(r.Findings, Finding{Severity: e.Severity, Summary: e.Summary, Step: e.Step, Evidence: UnescapeHTML(e.Evidence)})
		case transcript.TypeVerdict:
			r.Verdict = e.Summary
		case transcript.TypePrint:
			r.Log = append(r.Log, e.Message)
		}
	}
	if len(r.Steps) > 0 && r.Steps[0].Name == "" && len(r.Steps[0].Calls) == 0 {
		r.Steps = r.Steps[1:]
	}
	sort.SliceStable(r.Findings, func(i, j int) bool { return rank(r.Findings[i].Severity) > rank(r.Findings[j].Severity) })
	if f := t.Footer; f != nil {
		r.Status, r.Message, r.DurationMS, r.Cleanups = f.Status, f.Message, f.DurationMS, f.Cleanups
	}
	if n := len(r.Unchecked); n > 0 && r.Status != transcript.StatusOK {
		r.Unchecked = r.Unchecked[:n-1] // the failure that ended the run
	}
	r.escape()
	return r
}

// escape makes every string a runbook or workload controls printable
// (Printable): a report never carries terminal control sequences or
// line breaks that fake lines of its own.
func (r *Report) escape() {
	for _, s := range []*string{&r.Runbook, &r.Path, &r.Mode, &r.Status, &r.Message, &r.Verdict} {
		*s = Printable(*s)
	}
	for i := range r.Unchecked {
		c := &r.Unchecked[i]
		c.Builtin, c.Pos, c.Args, c.Error = Printable(c.Builtin), Printable(c.Pos), Printable(c.Args), Printable(c.Error)
	}
	for i := range r.Steps {
		s := &r.Steps[i]
		s.Name, s.Status, s.Message = Printable(s.Name), Printable(s.Status), Printable(s.Message)
		for j := range s.Calls {
			c := &s.Calls[j]
			c.Builtin, c.Pos, c.Args, c.Outcome, c.Error = Printable(c.Builtin), Printable(c.Pos), Printable(c.Args), Printable(c.Outcome), Printable(c.Error)
		}
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		f.Severity, f.Summary, f.Step = Printable(f.Severity), Printable(f.Summary), Printable(f.Step)
	}
	for i := range r.Changes {
		c := &r.Changes[i]
		c.Builtin, c.Target, c.State, c.Detail = Printable(c.Builtin), Printable(c.Target), Printable(c.State), Printable(c.Detail)
	}
	for i, l := range r.Log {
		r.Log[i] = Printable(l)
	}
	for i := range r.Cleanups {
		c := &r.Cleanups[i]
		c.Name, c.Error = Printable(c.Name), Printable(c.Error)
	}
}

func change(e *transcript.Event) Change {
	c := Change{Seq: e.Seq, Builtin: e.Builtin}
	var m struct {
		Target  string `json:"target"`
		Applied bool   `json:"applied"`
	}
	var res struct {
		Refused bool   `json:"refused"`
		Reason  string `json:"reason"`
		Note    string `json:"note"`
	}
	_ = json.Unmarshal(e.Mutation, &m)
	_ = json.Unmarshal(e.Result, &res)
	c.Target = m.Target
	switch {
	case e.Error != nil:
		c.State, c.Detail = "failed", e.Error.Message
	case res.Refused:
		c.State, c.Detail = "refused", res.Reason
	case e.DryRun != "":
		c.State = "planned (dry run: " + e.DryRun + ")"
	case m.Applied:
		c.State, c.Detail = "applied", res.Note
	default:
		c.State, c.Detail = "not applied", res.Note
	}
	return c
}

func rank(sev string) int {
	switch sev {
	case "critical":
		return 2
	case "warning":
		return 1
	}
	return 0
}

// Short renders JSON on one line, cut to n runes, without the HTML
// escapes (\u003c, \u003e, \u0026) encoding/json put in.
func Short(raw json.RawMessage, n int) string {
	s := strings.TrimSpace(string(UnescapeHTML(raw)))
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// UnescapeHTML returns the JSON text raw with encoding/json's HTML escapes
// \u003c, \u003e and \u0026 (and \u2028, \u2029) turned back into the
// characters, which need no escaping in JSON; an escaped backslash is kept.
func UnescapeHTML(raw json.RawMessage) json.RawMessage {
	if !bytes.Contains(raw, []byte(`\u`)) {
		return raw
	}
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' || i+1 >= len(raw) {
			out = append(out, c)
			continue
		}
		if raw[i+1] == 'u' && i+6 <= len(raw) {
			if r, ok := htmlEscapes[string(raw[i+2:i+6])]; ok {
				out = append(out, r...)
				i += 5
				continue
			}
		}
		out = append(out, c, raw[i+1]) // \\, \", \n, other \uXXXX: as is
		i++
	}
	return out
}

var htmlEscapes = map[string]string{"003c": "<", "003e": ">", "0026": "&", "2028": "\u2028", "2029": "\u2029"}
