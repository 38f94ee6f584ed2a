package transcript

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// A Writer appends events to a transcript file, one write per line, and
// syncs it at step boundaries and at the end, so a killed run leaves a
// readable prefix.
type Writer struct {
	mu   sync.Mutex
	f    *os.File
	path string
	buf  []byte
}

// Create creates (or truncates) the transcript at path, making its
// directory if needed.
func Create(path string) (*Writer, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("transcript: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	return &Writer{f: f, path: path}, nil
}

// Path returns the file the writer appends to.
func (w *Writer) Path() string { return w.path }

// Append writes one event as a line; sync also flushes it to disk.
func (w *Writer) Append(e *Event, sync bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("transcript: encode %s event: %w", e.Type, err)
	}
	w.buf = append(append(w.buf[:0], b...), '\n')
	if _, err := w.f.Write(w.buf); err != nil {
		return fmt.Errorf("transcript: write %s: %w", w.path, err)
	}
	if sync {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("transcript: sync %s: %w", w.path, err)
		}
	}
	return nil
}

// Close syncs and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return err
	}
	return w.f.Close()
}
