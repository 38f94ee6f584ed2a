package playbook

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// The cache keeps at most maxCachedRuns parsed transcripts, and evicts
// others once their files add up to more than maxCachedBytes (a parsed
// transcript takes a few times its file's size).
const (
	maxCachedRuns  = 16
	maxCachedBytes = 64 << 20
)

// runCache keeps the parsed transcript and report of recently read runs,
// keyed by the transcript file's size and modification time, so that
// concurrent and repeated GETs of a large run parse it once.
type runCache struct {
	mu      sync.Mutex
	entries map[string]*cachedRun
}

type cachedRun struct {
	once sync.Once
	size int64
	mod  time.Time
	t    *transcript.Transcript
	rep  *report.Report
}

// get returns the transcript at path (nil when absent or corrupt; partial
// while the run goes on) and its report.
func (c *runCache) get(id, path string) (*transcript.Transcript, *report.Report) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, nil
	}
	c.mu.Lock()
	if c.entries == nil {
		c.entries = map[string]*cachedRun{}
	}
	e := c.entries[id]
	if e == nil || e.size != st.Size() || !e.mod.Equal(st.ModTime()) {
		e = &cachedRun{size: st.Size(), mod: st.ModTime()}
		total := e.size
		for k, o := range c.entries {
			if k != id && (total+o.size > maxCachedBytes || len(c.entries) >= maxCachedRuns) {
				delete(c.entries, k)
				continue
			}
			total += o.size
		}
		c.entries[id] = e
	}
	c.mu.Unlock()
	e.once.Do(func() {
		t, err := transcript.ReadFile(path)
		if err != nil && !errors.Is(err, transcript.ErrTruncated) {
			return
		}
		e.t, e.rep = t, report.Build(t)
	})
	return e.t, e.rep
}
