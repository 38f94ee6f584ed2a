package job

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine/transcript"
)

// seedEvents reads the committed seed transcript's events.
func seedEvents(b *testing.B) []*transcript.Event {
	tr, err := transcript.ReadFile("../../examples/broken-pod/transcript.jsonl")
	if err != nil {
		b.Fatal(err)
	}
	return append(append([]*transcript.Event{tr.Header}, tr.Events...), tr.Footer)
}

// BenchmarkFramesSeed streams the seed transcript as frames and
// reassembles it, as a Job run and the executor do (bytes: the JSON
// lines).
func BenchmarkFramesSeed(b *testing.B) {
	evs := seedEvents(b)
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		fw := transcript.NewFrameWriter(&out)
		for _, e := range evs {
			fw.Event(e)
		}
		r := transcript.NewFrameReader(nil)
		eachLine(bytes.NewReader(out.Bytes()), func(l []byte) { r.Line(l) })
		if !r.Complete() {
			b.Fatal(r.Err())
		}
		b.SetBytes(int64(out.Len()))
	}
}

// BenchmarkPlainSeed is the baseline: the same events as plain JSON
// lines, written and parsed back with the transcript reader.
func BenchmarkPlainSeed(b *testing.B) {
	evs := seedEvents(b)
	var out bytes.Buffer
	for b.Loop() {
		out.Reset()
		for _, e := range evs {
			line, _ := json.Marshal(e)
			out.Write(append(line, '\n'))
		}
		if _, err := transcript.Read("seed", bytes.NewReader(out.Bytes())); err != nil {
			b.Fatal(err)
		}
		b.SetBytes(int64(out.Len()))
	}
}

// TestLogLinesBounded: a 40 MiB line in a Job's log (a workload printing
// into it) reaches the frame reader cut at maxLogLine, and the lines
// around it arrive whole.
func TestLogLinesBounded(t *testing.T) {
	log := "before\n" + strings.Repeat("x", 40<<20) + "\nafter\n"
	var got []int
	var last string
	eachLine(strings.NewReader(log), func(l []byte) { got = append(got, len(l)); last = string(l) })
	if len(got) != 3 || got[0] != 6 || got[1] > maxLogLine || got[1] < maxLogLine-(64<<10) || last != "after" {
		t.Errorf("line lengths %v (last %q), want 6, about %d, 5", got, last, maxLogLine)
	}
}
