package playbook

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
)

// The statuses of a run. ok, failed and cancelled are the transcript
// footer's; interrupted marks a run the server was killed during.
const (
	StatusQueued      = "queued"
	StatusRunning     = "running"
	StatusOK          = transcript.StatusOK
	StatusFailed      = transcript.StatusFailed
	StatusCancelled   = transcript.StatusCancelled
	StatusInterrupted = "interrupted"
	// StatusDuplicate is a run another replica of the server already
	// runs or ran (its Job exists): this replica did not run it.
	StatusDuplicate = "duplicate"
)

// Meta is a run's metadata, kept in STORE/runs/ID/run.json.
type Meta struct {
	ID          string         `json:"id"`
	Status      string         `json:"status"`
	Message     string         `json:"message,omitempty"`
	Route       string         `json:"route"`
	Runbook     string         `json:"runbook"`
	RunbookName string         `json:"runbook_name"`
	Params      map[string]any `json:"params"`
	Policy      Policy         `json:"policy"`
	Alert       Alert          `json:"alert"`
	Verdict     string         `json:"verdict,omitempty"`
	Findings    int            `json:"findings"`
	Changes     int            `json:"changes"`
	Executor    string         `json:"executor,omitempty"`
	// Damaged says why the run's transcript cannot be trusted (corrupt,
	// or a protocol error while it was streamed); kdiag never offers a
	// damaged transcript to undo.
	Damaged string `json:"damaged,omitempty"`
	// Set, for a fan-out route's run, is its pods and how they group;
	// the run's Verdict then sums the groups up.
	Set      *SetMeta   `json:"set,omitempty"`
	Received time.Time  `json:"received"`
	Started  *time.Time `json:"started,omitempty"`
	Ended    *time.Time `json:"ended,omitempty"`
}

// Done reports whether the run has ended.
func (m *Meta) Done() bool { return m.Status != StatusQueued && m.Status != StatusRunning }

// Store keeps runs under DIR/runs/ID: run.json, transcript.jsonl and
// report.{txt,md,json}, all 0600 in 0700 directories.
type Store struct {
	dir string
}

// OpenStore opens (creating) the store at dir.
func OpenStore(dir string) (*Store, error) {
	if dir == "" {
		return nil, errors.New("store: no directory (set store: in the config or --store)")
	}
	if err := os.MkdirAll(filepath.Join(dir, "runs"), 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return &Store{dir: dir}, nil
}

// Dir returns the directory of run id.
func (s *Store) Dir(id string) string { return filepath.Join(s.dir, "runs", id) }

// TranscriptPath returns where run id's transcript is written.
func (s *Store) TranscriptPath(id string) string {
	return filepath.Join(s.Dir(id), "transcript.jsonl")
}

// Save writes m's run.json atomically.
func (s *Store) Save(m *Meta) error {
	dir := s.Dir(m.ID)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("store: encode run %s: %w", m.ID, err)
	}
	return writeAtomic(filepath.Join(dir, "run.json"), append(b, '\n'))
}

// Load reads the run.json of run id.
func (s *Store) Load(id string) (*Meta, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir(id), "run.json"))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	m := new(Meta)
	if err := json.Unmarshal(b, m); err != nil {
		return nil, fmt.Errorf("store: run %s: run.json: %w", id, err)
	}
	return m, nil
}

// List returns every stored run, oldest first. Unreadable entries are
// skipped.
func (s *Store) List() ([]*Meta, error) {
	out, _, err := s.list()
	return out, err
}

// list returns the stored runs, oldest first, and an error for each run
// directory whose run.json cannot be read.
func (s *Store) list() ([]*Meta, []error, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "runs"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	var out []*Meta
	var bad []error
	for _, e := range entries {
		if !e.IsDir() || !validID(e.Name()) {
			continue
		}
		m, err := s.Load(e.Name())
		if err != nil {
			bad = append(bad, err)
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, bad, nil
}

// WriteReports renders t as report.txt, report.md and report.json in run
// id's directory.
func (s *Store) WriteReports(id string, t *transcript.Transcript) error {
	for _, f := range []struct{ name, format string }{{"report.txt", "text"}, {"report.md", "markdown"}, {"report.json", "json"}} {
		out, err := os.OpenFile(filepath.Join(s.Dir(id), f.name), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return fmt.Errorf("store: %w", err)
		}
		err = report.Render(out, t, f.format)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("store: run %s: %s: %w", id, f.name, err)
		}
	}
	return nil
}

func writeAtomic(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".run-*.json")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

var idPattern = regexp.MustCompile(`^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$`)

// validID reports whether s is a run id: 20060102T150405Z-1a2b3c4d.
func validID(s string) bool { return idPattern.MatchString(s) }

// newID returns a fresh, time-ordered run id.
func newID(now time.Time) string {
	var b [4]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}

// DamagedTranscript returns why the transcript at path cannot be trusted
// when it is a run store's transcript whose run.json marks the run
// damaged (a protocol error, forged frames, a corrupt file), or "".
// A fan-out run's pod transcript (NAMESPACE_POD.jsonl beside a run.json)
// is damaged when the set records that pod's run as damaged. kdiag undo
// refuses such a transcript.
func DamagedTranscript(path string) string {
	base := filepath.Base(path)
	b, err := os.ReadFile(filepath.Join(filepath.Dir(path), "run.json"))
	if err != nil {
		return ""
	}
	var m struct {
		Damaged string `json:"damaged"`
		Set     *struct {
			Pods []struct {
				Status     string `json:"status"`
				Transcript string `json:"transcript"`
				Error      string `json:"error"`
			} `json:"pods"`
		} `json:"set"`
	}
	if json.Unmarshal(b, &m) != nil {
		return "its run.json is unreadable"
	}
	if base == "transcript.jsonl" {
		return m.Damaged
	}
	if m.Set != nil {
		for _, p := range m.Set.Pods {
			if p.Transcript == base && p.Status == "damaged" {
				return p.Error
			}
		}
	}
	return ""
}

// Journaled is what a queued run needs to be resumed after a crash: its
// real params and labels (run.json holds redacted ones).
type Journaled struct {
	Params map[string]any    `json:"params"`
	Labels map[string]string `json:"labels"`
	// Set is a fan-out run's target, as the alert named it.
	Set *SetTarget `json:"set,omitempty"`
}

// SaveRequest writes run id's request.json (0600, never served).
func (s *Store) SaveRequest(id string, j *Journaled) error {
	if err := os.MkdirAll(s.Dir(id), 0o700); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("store: encode request %s: %w", id, err)
	}
	return writeAtomic(filepath.Join(s.Dir(id), "request.json"), b)
}

// LoadRequest reads run id's request.json.
func (s *Store) LoadRequest(id string) (*Journaled, error) {
	b, err := os.ReadFile(filepath.Join(s.Dir(id), "request.json"))
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	j := new(Journaled)
	if err := json.Unmarshal(b, j); err != nil {
		return nil, fmt.Errorf("store: run %s: request.json: %w", id, err)
	}
	return j, nil
}

// DropRequest removes run id's request.json once the run has ended.
func (s *Store) DropRequest(id string) { os.Remove(filepath.Join(s.Dir(id), "request.json")) }
