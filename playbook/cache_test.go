package playbook_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
)

// TestConcurrentReportGETs serves 12 concurrent GETs of a run whose
// transcript is 24 MB: the transcript is parsed once, not 12 times (the
// allocations stay under 4 times the file), and every answer is whole.
func TestConcurrentReportGETs(t *testing.T) {
	store := t.TempDir()
	const id = "20260101T000000Z-0000abcd"
	s0, _ := playbook.OpenStore(store)
	now := time.Now()
	s0.Save(&playbook.Meta{ID: id, Status: playbook.StatusOK, Route: "pods", Received: now, Ended: &now})
	w, err := transcript.Create(s0.TranscriptPath(id))
	if err != nil {
		t.Fatal(err)
	}
	w.Append(&transcript.Event{Type: transcript.TypeHeader, Version: 1, Runbook: "x.star", Name: "big"}, false)
	big := strings.Repeat("log line of a chatty pod\n", 4000)
	for i := 1; i <= 240; i++ {
		res, _ := json.Marshal(map[string]string{"text": big})
		w.Append(&transcript.Event{Type: transcript.TypeCall, Seq: i, Builtin: "logs", Effect: "read", Args: json.RawMessage(`{}`), Result: res}, false)
	}
	w.Append(&transcript.Event{Type: transcript.TypeFooter, Seq: 241, Status: "ok", Calls: 240}, true)
	w.Close()
	st, _ := os.Stat(s0.TranscriptPath(id))

	s := playbooktestStart(t, config(t, t.TempDir(), "", podRoute(t, "")), store)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr, _ := transcript.ReadFile(s0.TranscriptPath(id))
	report.Build(tr)
	runtime.ReadMemStats(&after)
	parse := after.TotalAlloc - before.TotalAlloc
	tr = nil
	runtime.GC()
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	errs := make(chan error, 12)
	for i := 0; i < 12; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, _, b := s.Get(t, "/runs/"+id+"?format=json", "")
			var d playbook.RunDetail
			if code != http.StatusOK || json.Unmarshal(b, &d) != nil || d.Report == nil || d.Report.Calls != 240 {
				errs <- fmt.Errorf("GET: %d, %d bytes", code, len(b))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("12 concurrent GETs of a %d MiB transcript allocated %d MiB; one parse and report take %d MiB", st.Size()>>20, alloc>>20, parse>>20)
	if alloc > 2*parse {
		t.Errorf("12 concurrent GETs allocated %d MiB, one parse %d MiB: parsed more than once", alloc>>20, parse>>20)
	}
	// The raw transcript is served without parsing it.
	runtime.ReadMemStats(&before)
	s.Get(t, "/runs/"+id+"/transcript", "")
	runtime.ReadMemStats(&after)
	if a := after.TotalAlloc - before.TotalAlloc; a > uint64(4*st.Size()) { // the client in this process reads it whole
		t.Errorf("GET transcript allocated %d MiB", a>>20)
	}
}
