package transcript

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// CorruptError reports a line that is not a valid event.
type CorruptError struct {
	Path string
	Line int
	Err  error
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%s:%d: corrupt transcript: %v", e.Path, e.Line, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// VersionError reports a transcript written in a format this build does
// not know.
type VersionError struct {
	Path string
	Got  int
}

func (e *VersionError) Error() string {
	if e.Got > Version {
		return fmt.Sprintf("%s: transcript format version %d is newer than this kdiag reads (%d); upgrade kdiag", e.Path, e.Got, Version)
	}
	return fmt.Sprintf("%s: unknown transcript format version %d (this kdiag reads %d)", e.Path, e.Got, Version)
}

// ErrTruncated is wrapped by errors for transcripts that end without a
// footer: the run was killed or is still going.
var ErrTruncated = errors.New("truncated transcript")

// Transcript is a parsed transcript.
type Transcript struct {
	Path   string
	Header *Event
	Events []*Event // between header and footer
	Footer *Event   // nil when truncated
}

// Calls returns the call events in order.
func (t *Transcript) Calls() []*Event {
	var out []*Event
	for _, e := range t.Events {
		if e.Type == TypeCall {
			out = append(out, e)
		}
	}
	return out
}

// ReadFile reads and checks the transcript at path. A transcript without a
// footer is returned together with an error wrapping ErrTruncated, so that
// callers may still show what it holds.
func ReadFile(path string) (*Transcript, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("transcript: %w", err)
	}
	defer f.Close()
	return Read(path, f)
}

// MaxLineBytes bounds one transcript line: a longer line is corrupt, and
// is not read into memory past the bound.
var MaxLineBytes = 64 << 20

// errLineTooLong is returned by readLine for a line over MaxLineBytes.
var errLineTooLong = errors.New("line too long")

// readLine reads one line, with its newline, of at most MaxLineBytes.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > MaxLineBytes {
			return nil, errLineTooLong
		}
		buf = append(buf, frag...)
		if err != bufio.ErrBufferFull {
			return buf, err
		}
	}
}

// Read parses a transcript from r, one line at a time; path names it in
// errors.
func Read(path string, r io.Reader) (*Transcript, error) {
	t := &Transcript{Path: path}
	br := bufio.NewReaderSize(r, 1<<16)
	line := 0
	var buf []byte
	for {
		b, err := readLine(br, buf)
		if err == errLineTooLong {
			return nil, &CorruptError{Path: path, Line: line + 1, Err: fmt.Errorf("the line is over %d bytes (transcript.MaxLineBytes)", MaxLineBytes)}
		}
		buf = b
		if len(b) == 0 && err == io.EOF {
			break
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("transcript: read %s: %w", path, err)
		}
		line++
		partial := err == io.EOF // last line without newline
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		e := new(Event)
		if jerr := decodeEvent(b, e); jerr != nil {
			if partial && t.Header == nil {
				return nil, &CorruptError{Path: path, Line: line, Err: fmt.Errorf("the header is cut short (%d bytes; the disk was full or the run was killed while writing it): %v", len(b), jerr)}
			}
			if partial {
				return t, fmt.Errorf("%s:%d: %w: the last line is incomplete (the run was killed while writing)", path, line, ErrTruncated)
			}
			return nil, &CorruptError{Path: path, Line: line, Err: jerr}
		}
		if err := t.add(e, line); err != nil {
			return nil, err
		}
		if partial {
			break
		}
	}
	if t.Header == nil {
		return nil, &CorruptError{Path: path, Line: 1, Err: errors.New("no header: not a kdiag transcript")}
	}
	if t.Footer == nil {
		return t, fmt.Errorf("%s: %w: no footer after line %d (the run was killed or is still running)", path, ErrTruncated, line)
	}
	return t, nil
}

func (t *Transcript) add(e *Event, line int) error {
	corrupt := func(format string, args ...any) error {
		return &CorruptError{Path: t.Path, Line: line, Err: fmt.Errorf(format, args...)}
	}
	switch {
	case line == 1 || t.Header == nil:
		if e.Type != TypeHeader {
			return corrupt("first line is a %q event, want the header: not a kdiag transcript", e.Type)
		}
		if e.Version != Version {
			return &VersionError{Path: t.Path, Got: e.Version}
		}
		t.Header = e
	case t.Footer != nil:
		return corrupt("%q event after the footer", e.Type)
	case e.Type == TypeFooter:
		t.Footer = e
	case e.Type == TypeHeader:
		return corrupt("second header")
	case e.Type == TypeCall:
		if e.Builtin == "" {
			return corrupt("call event without a built-in name")
		}
		if n := len(t.Events); n > 0 && e.Seq <= t.Events[n-1].Seq {
			return corrupt("seq %d does not follow %d", e.Seq, t.Events[n-1].Seq)
		}
		t.Events = append(t.Events, e)
	case e.Type == TypeStepStart, e.Type == TypeStepEnd, e.Type == TypeFinding, e.Type == TypePrint, e.Type == TypeVerdict:
		t.Events = append(t.Events, e)
	default:
		return corrupt("unknown event type %q", e.Type)
	}
	return nil
}
