package playbook

import (
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// RunSummary is one entry of GET /runs.
type RunSummary struct {
	ID       string            `json:"id"`
	Status   string            `json:"status"`
	Route    string            `json:"route"`
	Runbook  string            `json:"runbook"`
	Alert    map[string]string `json:"alert"`
	Received time.Time         `json:"received"`
	Started  *time.Time        `json:"started,omitempty"`
	Ended    *time.Time        `json:"ended,omitempty"`
	Verdict  string            `json:"verdict,omitempty"`
	URL      string            `json:"url"`
	// Pods, for a fan-out run, is the number of pods of its set.
	Pods int `json:"pods,omitempty"`
}

// RunDetail is GET /runs/ID in JSON: the run's metadata and its report
// (null until the run has a transcript).
type RunDetail struct {
	Run    *Meta          `json:"run"`
	Report *report.Report `json:"report"`
}

// summaries returns the runs newest first, filtered by status if given.
func (s *Server) summaries(status string, limit int) []RunSummary {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := slices.Sorted(maps.Keys(s.runs))
	slices.Reverse(ids)
	out := []RunSummary{}
	for _, id := range ids {
		m := s.runs[id]
		if status != "" && m.Status != status {
			continue
		}
		if len(out) == limit {
			break
		}
		sum := RunSummary{ID: m.ID, Status: m.Status, Route: m.Route, Runbook: m.RunbookName,
			Alert: m.Alert.Labels, Received: m.Received, Started: m.Started, Ended: m.Ended, Verdict: m.Verdict, URL: "/runs/" + m.ID}
		if m.Set != nil {
			sum.Pods = len(m.Set.Pods)
		}
		out = append(out, sum)
	}
	return out
}

func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			http.Error(w, "limit: want a positive number, got "+strconv.Quote(v), http.StatusBadRequest)
			return
		}
		limit = n
	}
	writeJSON(w, http.StatusOK, s.summaries(r.URL.Query().Get("status"), limit))
}

// meta returns a copy of run id's metadata.
func (s *Server) meta(id string) (*Meta, bool) {
	if !validID(id) {
		return nil, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.runs[id]
	if !ok {
		return nil, false
	}
	return m.snapshot(), true
}

// lookup returns a copy of run id's metadata, its transcript, which is
// nil when the run has none yet and partial while it runs, and its report.
func (s *Server) lookup(id string) (*Meta, *transcript.Transcript, *report.Report, bool) {
	if !validID(id) {
		return nil, nil, nil, false
	}
	s.mu.Lock()
	m, ok := s.runs[id]
	var snap *Meta
	if ok {
		snap = m.snapshot()
	}
	s.mu.Unlock()
	if !ok {
		return nil, nil, nil, false
	}
	t, rep := s.cache.get(id, s.store.TranscriptPath(id))
	return snap, t, rep, true
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	m, t, rep, ok := s.lookup(r.PathValue("id"))
	if !ok {
		http.Error(w, "no run "+strconv.Quote(r.PathValue("id")), http.StatusNotFound)
		return
	}
	if m.Set != nil {
		s.renderSet(w, r, m)
		return
	}
	s.renderRun(w, r, m, t, rep, "")
}

// renderRun answers a run's report in the format asked for; pod, for a
// pod of a fan-out run, names the pod the report is of.
func (s *Server) renderRun(w http.ResponseWriter, r *http.Request, m *Meta, t *transcript.Transcript, rep *report.Report, pod string) {
	format := requestFormat(r)
	switch format {
	case "json":
		writeJSON(w, http.StatusOK, RunDetail{Run: m, Report: rep})
	case "", "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		data := pageData{Meta: m, Report: rep, Style: report.HTMLStyle, Pod: pod}
		if rep != nil {
			view, err := report.HTMLView(rep)
			if err != nil {
				s.log.Error("run page", "run", m.ID, "err", err)
			}
			data.View = view
		}
		if err := runPage.Execute(w, data); err != nil {
			s.log.Error("run page", "run", m.ID, "err", err)
		}
	case "markdown", "md", "text", "txt":
		if t == nil {
			http.Error(w, "run "+m.ID+" has no transcript ("+m.Status+"): "+m.Message, http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if alias, ok := map[string]string{"md": "markdown", "txt": "text"}[format]; ok {
			format = alias
		}
		report.Render(w, t, format)
	default:
		http.Error(w, "format: unknown "+strconv.Quote(format)+" (formats: html, json, markdown, text)", http.StatusBadRequest)
	}
}

func (s *Server) handleTranscript(w http.ResponseWriter, r *http.Request) {
	m, ok := s.meta(r.PathValue("id"))
	if !ok {
		http.Error(w, "no run "+strconv.Quote(r.PathValue("id")), http.StatusNotFound)
		return
	}
	if m.Set != nil {
		http.Error(w, "run "+m.ID+" is a fan-out run with a transcript per pod: GET /runs/"+m.ID+"/transcripts.tar (all of them, for kdiag report DIR and kdiag replay DIR) or /runs/"+m.ID+"/pods/POD/transcript", http.StatusNotFound)
		return
	}
	f, err := os.Open(s.store.TranscriptPath(m.ID))
	if err != nil {
		http.Error(w, "run "+m.ID+" has no transcript ("+m.Status+")", http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	http.ServeContent(w, r, "", time.Time{}, f)
}

func (s *Server) handleIndex(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := indexPage.Execute(w, s.summaries("", 200)); err != nil {
		s.log.Error("index page", "err", err)
	}
}

// requestFormat is the format a GET of a run asks for: ?format=, or json
// by its Accept header.
func requestFormat(r *http.Request) string {
	format := r.URL.Query().Get("format")
	if format == "" && strings.Contains(r.Header.Get("Accept"), "application/json") {
		format = "json"
	}
	return format
}
