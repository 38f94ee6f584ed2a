package job

import (
	"fmt"
	"os"
	"path/filepath"
)

// transcriptSink writes a Job run's transcript to the run's
// TranscriptPath as its events arrive. The file is created with the
// first event, so a run that never started has no transcript.
type transcriptSink struct {
	path string
	f    *os.File
	err  error
}

// append writes one event's JSON line.
func (s *transcriptSink) append(line []byte) {
	if s.err != nil {
		return
	}
	if s.f == nil {
		if s.err = os.MkdirAll(filepath.Dir(s.path), 0o755); s.err != nil {
			return
		}
		if s.f, s.err = os.OpenFile(s.path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600); s.err != nil {
			return
		}
	}
	_, s.err = s.f.Write(append(line[:len(line):len(line)], '\n'))
}

// rewrite replaces the file's content with lines.
func (s *transcriptSink) rewrite(lines [][]byte) {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.err = nil
	for _, l := range lines {
		s.append(l)
	}
}

// close syncs and closes the file and returns the first error met.
func (s *transcriptSink) close() error {
	if s.f != nil {
		if err := s.f.Sync(); err != nil && s.err == nil {
			s.err = err
		}
		if err := s.f.Close(); err != nil && s.err == nil {
			s.err = err
		}
		s.f = nil
	}
	if s.err != nil {
		return fmt.Errorf("transcript %s: %w", s.path, s.err)
	}
	return nil
}
