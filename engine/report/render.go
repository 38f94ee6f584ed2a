package report

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/kdiag/kdiag/engine/transcript"
	"sigs.k8s.io/yaml"
)

// Formats are the output formats Render accepts.
var Formats = []string{"text", "markdown", "json", "yaml", "html"}

// Options tune rendering.
type Options struct {
	// Color marks severities, statuses and step outcomes with ANSI colours
	// in the text format (for a terminal).
	Color bool
}

// Render writes the report of t in the given format.
func Render(w io.Writer, t *transcript.Transcript, format string) error {
	return RenderWith(w, t, format, Options{})
}

// RenderWith is Render with options.
func RenderWith(w io.Writer, t *transcript.Transcript, format string, o Options) error {
	r := Build(t)
	switch format {
	case "", "text":
		return text(w, r, o)
	case "markdown", "md":
		return markdown(w, r)
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	case "html":
		return html(w, r)
	case "yaml":
		b, err := yaml.Marshal(r)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return fmt.Errorf("unknown report format %q (formats: %s)", format, strings.Join(Formats, ", "))
}

// ANSI colours of the text format.
const (
	ansiReset  = "\033[0m"
	ansiRed    = "\033[1;31m"
	ansiYellow = "\033[33m"
	ansiGreen  = "\033[32m"
	ansiCyan   = "\033[36m"
)

// paint wraps s in the colour of what it says (a severity, a status or a
// step mark) when o.Color is set.
func (o Options) paint(s, what string) string {
	if !o.Color {
		return s
	}
	c := ""
	switch strings.ToLower(what) {
	case "critical", "failed", "✗":
		c = ansiRed
	case "warning", "incomplete", "cancelled", "…":
		c = ansiYellow
	case "ok", "✓":
		c = ansiGreen
	case "info":
		c = ansiCyan
	}
	if c == "" {
		return s
	}
	return c + s + ansiReset
}

func params(p map[string]any) string {
	keys := slices.Sorted(maps.Keys(p))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		if p[k] == nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%v", k, p[k]))
	}
	if len(parts) == 0 {
		return "(none)"
	}
	return strings.Join(parts, " ")
}

func seconds(ms float64) string { return fmt.Sprintf("%.3fs", ms/1000) }

func mark(status string) string {
	switch status {
	case "ok":
		return "✓"
	case "failed":
		return "✗"
	}
	return "…"
}

func text(w io.Writer, r *Report, o Options) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("Runbook   %s (%s)\n", r.Runbook, r.Path)
	p("Params    %s\n", params(r.Params))
	for _, s := range r.Sources {
		p("Source    %s at %s (%s): %s\n", s.Repo, s.Commit, s.URL, strings.Join(s.Files, ", "))
	}
	p("Mode      %s\n", r.Mode)
	if r.Start != "" {
		p("Started   %s\n", r.Start)
	}
	if r.Deadline != "" {
		p("Deadline  %s after the start\n", r.Deadline)
	}
	p("Status    %s · %d calls · %d changes · %s\n", o.paint(r.Status, r.Status), r.Calls, r.Writes, seconds(r.DurationMS))
	if r.Message != "" {
		p("Error     %s\n", r.Message)
	}
	p("\nSteps\n")
	for _, s := range r.Steps {
		name := s.Name
		if name == "" {
			name = "(outside any step)"
		}
		p("  %s %s\n", o.paint(mark(s.Status), mark(s.Status)), name)
		if s.Message != "" {
			p("      error: %s\n", s.Message)
		}
		for _, c := range s.Calls {
			out := "→ " + c.Outcome
			if c.Error != "" {
				out = "✗ " + c.Error
			}
			p("      #%-3d %s %s  %s (%s)\n", c.Seq, c.Builtin, c.Args, out, seconds(c.DurationMS))
		}
	}
	p("\nFindings\n")
	if len(r.Findings) == 0 {
		p("  (none)\n")
	}
	for _, f := range r.Findings {
		p("  %s %s\n", o.paint(fmt.Sprintf("%-8s", strings.ToUpper(f.Severity)), f.Severity), f.Summary)
		if len(f.Evidence) > 0 {
			p("           evidence: %s\n", Short(f.Evidence, 200))
		}
	}
	if len(r.Unchecked) > 0 {
		p("\nNot checked (failed calls the runbook went on without)\n")
		for _, c := range r.Unchecked {
			p("  #%-3d %s\n", c.Seq, c.Error)
		}
	}
	if len(r.Changes) > 0 {
		p("\nChanges\n")
		for _, c := range r.Changes {
			p("  #%-3d %s %s: %s\n", c.Seq, c.Builtin, c.Target, c.State)
			if c.Detail != "" {
				p("       %s\n", c.Detail)
			}
		}
	}
	p("\nVerdict\n")
	if r.Verdict == "" {
		p("  (no verdict)\n")
	} else {
		p("  %s\n", r.Verdict)
	}
	return nil
}

func markdown(w io.Writer, r *Report) error {
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("# %s\n\n", r.Runbook)
	p("| | |\n|---|---|\n| runbook | `%s` |\n| params | `%s` |\n| mode | %s |\n| status | **%s** |\n| calls | %d (%d changes) |\n| duration | %s |\n",
		r.Path, params(r.Params), r.Mode, r.Status, r.Calls, r.Writes, seconds(r.DurationMS))
	if r.Start != "" {
		p("| started | %s |\n", r.Start)
	}
	if r.Deadline != "" {
		p("| deadline | %s after the start |\n", r.Deadline)
	}
	if r.Message != "" {
		p("| error | %s |\n", mdCell(r.Message))
	}
	p("\n## Verdict\n\n")
	if r.Verdict == "" {
		p("_no verdict_\n")
	} else {
		p("%s\n", r.Verdict)
	}
	p("\n## Findings\n\n")
	if len(r.Findings) == 0 {
		p("_none_\n")
	}
	for _, f := range r.Findings {
		p("- **%s** %s\n", f.Severity, f.Summary)
		if len(f.Evidence) > 0 {
			p("  - evidence: `%s`\n", Short(f.Evidence, 300))
		}
	}
	if len(r.Unchecked) > 0 {
		p("\n## Not checked\n\nFailed calls the runbook went on without:\n\n")
		for _, c := range r.Unchecked {
			p("- #%d %s\n", c.Seq, mdCell(c.Error))
		}
	}
	if len(r.Changes) > 0 {
		p("\n## Changes\n\n| seq | built-in | target | state |\n|---|---|---|---|\n")
		for _, c := range r.Changes {
			p("| %d | %s | %s | %s |\n", c.Seq, c.Builtin, mdCell(c.Target), mdCell(c.State))
		}
	}
	p("\n## Steps\n")
	for _, s := range r.Steps {
		name := s.Name
		if name == "" {
			name = "(outside any step)"
		}
		p("\n### %s %s\n\n", mark(s.Status), name)
		if s.Message != "" {
			p("error: %s\n\n", s.Message)
		}
		if len(s.Calls) > 0 {
			p("| seq | call | outcome | time |\n|---|---|---|---|\n")
		}
		for _, c := range s.Calls {
			out := c.Outcome
			if c.Error != "" {
				out = "✗ " + c.Error
			}
			p("| %d | `%s %s` | %s | %s |\n", c.Seq, c.Builtin, mdCell(c.Args), mdCell(out), seconds(c.DurationMS))
		}
	}
	return nil
}

func mdCell(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ") }
