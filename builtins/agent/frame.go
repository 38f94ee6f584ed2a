package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sync"
)

// frameTooLarge is the error of a frame over the cap.
type frameTooLarge struct{ max int }

func (e *frameTooLarge) Error() string {
	return fmt.Sprintf("a frame over the %d-byte cap", e.max)
}

// readFrame reads one newline-terminated frame of at most max bytes (the
// newline excluded) from r. A longer frame is not read into memory past
// the cap: it is a *frameTooLarge, after which the stream cannot be
// trusted. A last frame without its newline is io.ErrUnexpectedEOF.
func readFrame(r *bufio.Reader, max int) ([]byte, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > max+1 || len(buf)+len(frag) > max && err != nil {
			return nil, &frameTooLarge{max: max}
		}
		buf = append(buf, frag...)
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(buf) > 0:
			return nil, io.ErrUnexpectedEOF
		case err != nil:
			return nil, err
		}
		return buf[:len(buf)-1], nil
	}
}

// frameWriter writes whole frames, one at a time, to a stream shared by
// the calls of a session.
type frameWriter struct {
	mu  sync.Mutex
	out io.Writer
	err error
}

// write writes v as one frame; after a failure every write fails.
func (w *frameWriter) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return w.writeLine(b)
}

// writeLine writes b and a newline as one frame.
func (w *frameWriter) writeLine(b []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return w.err
	}
	_, w.err = w.out.Write(append(b, '\n'))
	return w.err
}
