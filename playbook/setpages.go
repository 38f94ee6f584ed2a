package playbook

import (
	"archive/tar"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/kdiag/kdiag/engine/fleet"
	"github.com/kdiag/kdiag/engine/report"
)

// snapshot returns a copy of m that later changes to the run (a set's
// pods as they end) do not touch; s.mu is held.
func (m *Meta) snapshot() *Meta {
	c := *m
	if m.Set != nil {
		set := *m.Set
		set.Pods = slices.Clone(m.Set.Pods)
		set.Groups = slices.Clone(m.Set.Groups)
		c.Set = &set
	}
	return &c
}

// SetDetail is GET /runs/ID in JSON for a fan-out run: the run's
// metadata (its set: pods, groups) and the set as kdiag report prints a
// fleet directory.
type SetDetail struct {
	Run     *Meta          `json:"run"`
	Summary *fleet.Summary `json:"summary"`
}

// setPageData is what a fan-out run's page shows.
type setPageData struct {
	Meta    *Meta
	Summary string
}

// renderSet answers a fan-out run: its pods grouped by verdict, each
// linking to the pod's report.
func (s *Server) renderSet(w http.ResponseWriter, r *http.Request, m *Meta) {
	sum := m.Set.Summary(m.RunbookName)
	switch format := requestFormat(r); format {
	case "json":
		writeJSON(w, http.StatusOK, SetDetail{Run: m, Summary: sum})
	case "", "html":
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := setPage.Execute(w, setPageData{Meta: m, Summary: sum.Text()}); err != nil {
			s.log.Error("set page", "run", m.ID, "err", err)
		}
	case "markdown", "md":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("```\n" + setText(m, sum) + "```\n"))
	case "text", "txt":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(setText(m, sum)))
	default:
		http.Error(w, "format: unknown "+strconv.Quote(format)+" (formats: html, json, markdown, text)", http.StatusBadRequest)
	}
}

// setText is a fan-out run's text report: the fleet summary, and why the
// set did not run or left pods out.
func setText(m *Meta, sum *fleet.Summary) string {
	t := sum.Text()
	if m.Set.LeftOut != "" {
		t += "left out: " + report.Printable(m.Set.LeftOut) + "\n"
	}
	if m.Message != "" {
		t += "run " + m.Status + ": " + report.Printable(m.Message) + "\n"
	}
	return t
}

// setPod returns a copy of fan-out run id and its pod named pod, with the
// pod's transcript file; ok is false when either is unknown.
func (s *Server) setPodOf(id, pod string) (*Meta, fleet.Outcome, string, bool) {
	m, ok := s.meta(id)
	if !ok || m.Set == nil {
		return nil, fleet.Outcome{}, "", false
	}
	i := slices.IndexFunc(m.Set.Pods, func(o fleet.Outcome) bool { return o.Pod == pod })
	if i < 0 {
		return nil, fleet.Outcome{}, "", false
	}
	o := m.Set.Pods[i]
	// The file name is made from the pod as listed, never from the URL.
	return m, o, filepath.Join(s.store.Dir(m.ID), o.Namespace+"_"+o.Pod+".jsonl"), true
}

func (s *Server) handlePod(w http.ResponseWriter, r *http.Request) {
	m, o, path, ok := s.setPodOf(r.PathValue("id"), r.PathValue("pod"))
	if !ok {
		http.Error(w, "no fan-out run "+strconv.Quote(r.PathValue("id"))+" with pod "+strconv.Quote(r.PathValue("pod")), http.StatusNotFound)
		return
	}
	t, rep := s.cache.get(m.ID+"/"+o.Pod, path)
	m.Status, m.Message, m.Verdict = o.Status, o.Error, o.Verdict
	if rep != nil {
		m.Findings, m.Changes = len(rep.Findings), len(rep.Changes)
	}
	if requestFormat(r) == "json" {
		writeJSON(w, http.StatusOK, struct {
			Run    *Meta          `json:"run"`
			Pod    fleet.Outcome  `json:"pod"`
			Report *report.Report `json:"report"`
		}{m, o, rep})
		return
	}
	s.renderRun(w, r, m, t, rep, o.Pod)
}

func (s *Server) handlePodTranscript(w http.ResponseWriter, r *http.Request) {
	m, o, path, ok := s.setPodOf(r.PathValue("id"), r.PathValue("pod"))
	if !ok {
		http.Error(w, "no fan-out run "+strconv.Quote(r.PathValue("id"))+" with pod "+strconv.Quote(r.PathValue("pod")), http.StatusNotFound)
		return
	}
	f, err := os.Open(path)
	if err != nil {
		http.Error(w, "pod "+o.Pod+" of run "+m.ID+" has no transcript ("+o.Status+")", http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/x-ndjson")
	http.ServeContent(w, r, "", time.Time{}, f)
}

// handleSetTar answers the transcripts of a fan-out run's pods as a tar
// of NAMESPACE_POD.jsonl files (and summary.json): extracted into a
// directory, kdiag report DIR and kdiag replay DIR read it as a fleet.
func (s *Server) handleSetTar(w http.ResponseWriter, r *http.Request) {
	m, ok := s.meta(r.PathValue("id"))
	if !ok || m.Set == nil {
		http.Error(w, "no fan-out run "+strconv.Quote(r.PathValue("id")), http.StatusNotFound)
		return
	}
	var files []string
	for _, o := range m.Set.Pods {
		if o.Transcript != "" {
			files = append(files, o.Namespace+"_"+o.Pod+".jsonl")
		}
	}
	if m.Done() {
		files = append(files, "summary.json")
	}
	w.Header().Set("Content-Type", "application/x-tar")
	w.Header().Set("Content-Disposition", `attachment; filename="`+m.ID+`.tar"`)
	tw := tar.NewWriter(w)
	for _, name := range files {
		if err := addFile(tw, filepath.Join(s.store.Dir(m.ID), name), m.ID+"/"+name); err != nil {
			s.log.Error("set tar", "run", m.ID, "file", name, "err", err)
			return // a broken tar tells the client
		}
	}
	if err := tw.Close(); err != nil {
		s.log.Error("set tar", "run", m.ID, "err", err)
	}
}

// addFile writes the file at path into tw as name.
func addFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: st.Size(), ModTime: st.ModTime(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, st.Size())
	return err
}
