package transcript

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode/utf8"
)

// FramePrefix starts every line of a transcript streamed by
// `kdiag run --stream-transcript`, the way a Job run sends its
// transcript back to the server through the pod's log.
const FramePrefix = "kdiag-transcript "

// frameChunk bounds a frame's payload. Container runtimes split log lines
// longer than 16 KiB into pieces, and the log the API server returns
// interleaves stdout and stderr line by line: a longer line could come
// back with a line of stderr inside it. Frames stay well below.
const frameChunk = 8 << 10

// FrameWriter writes a run's events as frames, one or more lines per
// event: "kdiag-transcript SEQ I/N PAYLOAD", PAYLOAD being the I-th of N
// pieces of the event's JSON line, the bytes a transcript file holds.
// With a key, every frame carries the hex HMAC-SHA256 of "SEQ I/N
// PAYLOAD" under it: "kdiag-transcript SEQ I/N MAC PAYLOAD", so that a
// line a workload gets printed into the same log cannot pass for a frame.
// Its Event method is an engine Observer.
type FrameWriter struct {
	mu  sync.Mutex
	w   io.Writer
	err error
	buf []byte
	key []byte
}

// NewFrameWriter returns a FrameWriter writing to w (kdiag run: stdout).
func NewFrameWriter(w io.Writer) *FrameWriter { return &FrameWriter{w: w} }

// NewSignedFrameWriter returns a FrameWriter whose frames carry an
// HMAC-SHA256 under key (the per-run key the Job executor passes).
func NewSignedFrameWriter(w io.Writer, key []byte) *FrameWriter {
	return &FrameWriter{w: w, key: bytes.Clone(key)}
}

// frameMAC returns the hex HMAC-SHA256 of "SEQ I/N PAYLOAD".
func frameMAC(key, head, payload []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(head)
	m.Write([]byte{' '})
	m.Write(payload)
	return hex.AppendEncode(nil, m.Sum(nil))
}

// Event writes e's frames, each with one Write. After a write error it
// writes nothing more; Err returns the error.
func (f *FrameWriter) Event(e *Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return
	}
	line, err := json.Marshal(e)
	if err != nil {
		f.err = fmt.Errorf("stream transcript: encode %s event: %w", e.Type, err)
		return
	}
	pieces := splitFrames(line, frameChunk)
	for i, p := range pieces {
		f.buf = append(f.buf[:0], FramePrefix...)
		start := len(f.buf)
		f.buf = strconv.AppendInt(f.buf, int64(e.Seq), 10)
		f.buf = append(f.buf, ' ')
		f.buf = strconv.AppendInt(f.buf, int64(i+1), 10)
		f.buf = append(f.buf, '/')
		f.buf = strconv.AppendInt(f.buf, int64(len(pieces)), 10)
		if f.key != nil {
			f.buf = append(append(f.buf, ' '), frameMAC(f.key, f.buf[start:], p)...)
		}
		f.buf = append(append(append(f.buf, ' '), p...), '\n')
		if _, err := f.w.Write(f.buf); err != nil {
			f.err = fmt.Errorf("stream transcript: %w", err)
			return
		}
	}
}

// Err returns the first error met while writing.
func (f *FrameWriter) Err() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// splitFrames cuts b into pieces of at most n bytes, never inside a UTF-8
// sequence.
func splitFrames(b []byte, n int) [][]byte {
	var out [][]byte
	for len(b) > n {
		cut := n
		for cut > n-utf8.UTFMax && !utf8.RuneStart(b[cut]) {
			cut--
		}
		out = append(out, b[:cut])
		b = b[cut:]
	}
	return append(out, b)
}

// FrameReader reassembles events from the lines of a log holding frames
// (a Job's pod log). Lines that are not frames (the report, errors) are
// kept, the last few, to explain a run that failed before or outside its
// transcript. The zero FrameReader reads unsigned frames.
type FrameReader struct {
	events  [][]byte // complete JSON lines, in order
	seq     int      // seq of the event being assembled
	part, n int
	buf     []byte
	other   []string
	err     error  // the first protocol error
	key     []byte // when set, frames must carry a valid HMAC under it
	forged  int    // frames dropped for a missing or wrong HMAC
}

// NewFrameReader returns a FrameReader that accepts only frames carrying
// a valid HMAC under key (NewSignedFrameWriter's); with a nil key it
// accepts unsigned frames.
func NewFrameReader(key []byte) *FrameReader {
	return &FrameReader{key: bytes.Clone(key)}
}

// maxOtherLines bounds the non-frame lines a FrameReader keeps.
const maxOtherLines = 20

// Line consumes one log line (without its newline) and returns the event
// it completes, if any.
func (r *FrameReader) Line(l []byte) []byte {
	rest, ok := bytes.CutPrefix(l, []byte(FramePrefix))
	if !ok {
		if s := string(bytes.TrimSpace(l)); s != "" {
			if len(s) > 512 {
				s = s[:512] + "…"
			}
			r.other = append(r.other, s)
			if len(r.other) > maxOtherLines {
				r.other = r.other[1:]
			}
		}
		return nil
	}
	seq, i, n, payload, err := parseFrame(rest, r.key)
	switch {
	case err != nil:
		if errors.Is(err, errForged) {
			r.forged++
		}
		r.fail(err)
		return nil
	case i == 1:
		if r.part != 0 {
			r.fail(fmt.Errorf("event %d: frame 1/%d while event %d has %d of %d frames", seq, n, r.seq, r.part, r.n))
		}
		r.seq, r.part, r.n, r.buf = seq, 0, n, r.buf[:0]
	case seq != r.seq || i != r.part+1 || n != r.n:
		r.fail(fmt.Errorf("event %d: frame %d/%d out of order", seq, i, n))
		r.part = 0
		return nil
	}
	r.buf = append(r.buf, payload...)
	r.part = i
	if i < n {
		return nil
	}
	r.part = 0
	if want := len(r.events); seq != want { // the header is 0, then 1, 2...
		r.fail(fmt.Errorf("event %d arrived where event %d was due", seq, want))
	}
	ev := append([]byte(nil), r.buf...)
	r.events = append(r.events, ev)
	return ev
}

func (r *FrameReader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
}

// errForged is wrapped by the error of a frame whose HMAC is missing or
// wrong.
var errForged = errors.New("forged frame")

// parseFrame parses "SEQ I/N PAYLOAD" or, with a key, "SEQ I/N MAC
// PAYLOAD", checking the MAC.
func parseFrame(b []byte, key []byte) (seq, i, n int, payload []byte, err error) {
	fields := 3
	if key != nil {
		fields = 4
	}
	f := bytes.SplitN(b, []byte(" "), fields)
	if len(f) != fields {
		return 0, 0, 0, nil, fmt.Errorf("malformed frame %.40q", b)
	}
	if key != nil {
		head := b[:len(f[0])+1+len(f[1])]
		if !hmac.Equal(f[2], frameMAC(key, head, f[3])) {
			return 0, 0, 0, nil, fmt.Errorf("%w: frame %q has no valid HMAC under the run's key (a line printed into the log by something other than kdiag); dropped", errForged, head)
		}
		f = [][]byte{f[0], f[1], f[3]}
	}
	is, ns, ok := bytes.Cut(f[1], []byte("/"))
	seq, err1 := strconv.Atoi(string(f[0]))
	i, err2 := strconv.Atoi(string(is))
	n, err3 := strconv.Atoi(string(ns))
	if !ok || err1 != nil || err2 != nil || err3 != nil || seq < 0 || i < 1 || i > n {
		return 0, 0, 0, nil, fmt.Errorf("malformed frame header %q", f[:2])
	}
	return seq, i, n, f[2], nil
}

// Complete reports whether the reassembled transcript ends with a footer
// and no frame was lost on the way.
func (r *FrameReader) Complete() bool {
	return r.err == nil && r.Footer() != nil
}

// Events returns the reassembled events' JSON lines, in order.
func (r *FrameReader) Events() [][]byte { return r.events }

// Other returns the last lines of the log that were not frames.
func (r *FrameReader) Other() []string { return r.other }

// Err returns the first protocol error met (a lost, misplaced or forged
// frame), or nil.
func (r *FrameReader) Err() error { return r.err }

// Forged returns how many frames were dropped for a missing or wrong HMAC.
func (r *FrameReader) Forged() int { return r.forged }

// Footer returns the reassembled transcript's footer, if it has one.
func (r *FrameReader) Footer() *Event {
	if len(r.events) == 0 {
		return nil
	}
	ft := new(Event)
	if json.Unmarshal(r.events[len(r.events)-1], ft) != nil || ft.Type != TypeFooter {
		return nil
	}
	return ft
}
