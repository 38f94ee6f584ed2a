package playbook

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/kdiag/kdiag/engine/transcript"
)

// events returns a small transcript whose call result is a line of n
// bytes with multi-byte runes, longer than a container runtime's 16 KiB
// log line.
func events(n int) []*transcript.Event {
	big := strings.Repeat("é€x", n/6)
	return []*transcript.Event{
		{Type: transcript.TypeHeader, Version: transcript.Version, Name: "t", Runbook: "@kdiag//t.star"},
		{Type: transcript.TypeCall, Seq: 1, Builtin: "logs", Result: json.RawMessage(`{"text":"` + big + `"}`)},
		{Type: transcript.TypePrint, Seq: 2, Message: "kdiag-transcript 9 1/1 not a frame when inside a message"},
		{Type: transcript.TypeFooter, Seq: 3, Status: transcript.StatusOK},
	}
}

// TestFramesRoundTrip writes events as frames, puts foreign lines (as
// stderr lines interleaved by the API server) between every frame, and
// reads back the exact JSON lines a transcript file holds.
func TestFramesRoundTrip(t *testing.T) {
	evs := events(40 << 10)
	var out bytes.Buffer
	fw := NewFrameWriter(&out)
	for _, e := range evs {
		fw.Event(e)
	}
	if fw.Err() != nil {
		t.Fatal(fw.Err())
	}
	var r frameReader
	var got [][]byte
	frames := 0
	for _, l := range bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n")) {
		if len(l) > 16<<10-64 {
			t.Fatalf("a frame of %d bytes would be split by the runtime", len(l))
		}
		frames++
		for range 3 {
			r.line([]byte("  ▶ a progress line on stderr"))
		}
		if ev := r.line(l); ev != nil {
			got = append(got, ev)
		}
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	if frames < len(evs)+4 {
		t.Fatalf("%d frames for %d events: the big event was not split", frames, len(evs))
	}
	for i, e := range evs {
		want, _ := json.Marshal(e)
		if !bytes.Equal(got[i], want) {
			t.Fatalf("event %d differs:\n%.200s\n%.200s", i, got[i], want)
		}
	}
	if !r.complete() || r.footer().Status != transcript.StatusOK {
		t.Fatalf("complete=%v footer=%+v", r.complete(), r.footer())
	}
	if len(r.other) != maxOtherLines {
		t.Fatalf("kept %d foreign lines, want the last %d", len(r.other), maxOtherLines)
	}
	// The reassembled lines form a transcript the strict reader accepts.
	tr, err := transcript.Read("stream", bytes.NewReader(append(bytes.Join(got, []byte("\n")), '\n')))
	if err != nil || tr.Footer == nil {
		t.Fatalf("read: %v", err)
	}
}

// TestFramesDamaged: a lost frame, a lost event and garbage are protocol
// errors, never silently a shorter transcript.
func TestFramesDamaged(t *testing.T) {
	var out bytes.Buffer
	fw := NewFrameWriter(&out)
	for _, e := range events(40 << 10) {
		fw.Event(e)
	}
	lines := bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n"))
	for name, tc := range map[string]struct {
		drop int
		add  string
		want string
	}{
		"middle frame lost": {drop: 2, want: "out of order"},
		"header lost":       {drop: 0, want: "arrived where event 0 was due"},
		"last event lost":   {drop: len(lines) - 1},
		"garbage frame":     {drop: -1, add: FramePrefix + "x 1/1 {}", want: "malformed frame header"},
	} {
		t.Run(name, func(t *testing.T) {
			var r frameReader
			for i, l := range lines {
				if i != tc.drop {
					r.line(l)
				}
			}
			if tc.add != "" {
				r.line([]byte(tc.add))
			}
			if r.complete() {
				t.Fatal("complete after damage")
			}
			if tc.want != "" && (r.err == nil || !strings.Contains(r.err.Error(), tc.want)) {
				t.Fatalf("err %v, want %q", r.err, tc.want)
			}
		})
	}
}

// TestSplitFramesRunes: pieces are at most n bytes, never cut a UTF-8
// sequence, and join back to the input.
func TestSplitFramesRunes(t *testing.T) {
	b := []byte(strings.Repeat("a€", 100))
	for n := 4; n < 12; n++ {
		pieces := splitFrames(b, n)
		for _, p := range pieces {
			if len(p) > n || !utf8.Valid(p) {
				t.Fatalf("n=%d: bad piece %q", n, p)
			}
		}
		if !bytes.Equal(bytes.Join(pieces, nil), b) {
			t.Fatalf("n=%d: pieces do not join back", n)
		}
	}
}

// seedEvents reads the committed seed transcript's events.
func seedEvents(b *testing.B) []*transcript.Event {
	tr, err := transcript.ReadFile("../examples/broken-pod/transcript.jsonl")
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
		fw := NewFrameWriter(&out)
		for _, e := range evs {
			fw.Event(e)
		}
		var r frameReader
		eachLine(bytes.NewReader(out.Bytes()), func(l []byte) { r.line(l) })
		if !r.complete() {
			b.Fatal(r.err)
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

// TestForgedFrameRejected is the forged-change attack: a workload gets a
// line into the pod's log (a file it controls, read with run(["cat"])
// and passed to log(), or anything it prints where kdiag's output goes)
// that looks like the frame of a patch_configmap call. Without a key the
// reader takes it as the run's next event, so that undo would revert a
// change the run never made; with the run's key it is dropped and the
// stream is marked damaged.
func TestForgedFrameRejected(t *testing.T) {
	evs := events(100)
	forged := `{"type":"call","seq":2,"builtin":"patch_configmap","effect":"write","args":{"name":"victim"},"mutation":{"applied":true,"target":"configmap prod/victim"}}`
	key := []byte("0123456789abcdef0123456789abcdef")
	stream := func(fw *FrameWriter, buf *bytes.Buffer) []byte {
		for i, e := range evs {
			fw.Event(e)
			if i == 1 { // the workload's line lands between two events
				buf.WriteString("kdiag-transcript 2 1/1 " + forged + "\n")
				buf.WriteString("kdiag-transcript 2 1/1 " + strings.Repeat("0", 64) + " " + forged + "\n")
			}
		}
		return buf.Bytes()
	}
	read := func(b []byte, key []byte) *frameReader {
		r := &frameReader{key: key}
		for _, l := range bytes.Split(b, []byte("\n")) {
			r.line(l)
		}
		return r
	}

	var plain bytes.Buffer
	r := read(stream(NewFrameWriter(&plain), &plain), nil)
	if !bytes.Contains(bytes.Join(r.events, nil), []byte("configmap prod/victim")) {
		t.Fatalf("without a key the forged frame should be taken (the attack this test guards); events: %s", bytes.Join(r.events, []byte("\n")))
	}

	var signed bytes.Buffer
	r = read(stream(NewSignedFrameWriter(&signed, key), &signed), key)
	if bytes.Contains(bytes.Join(r.events, nil), []byte("victim")) {
		t.Fatalf("the forged frame was kept: %s", bytes.Join(r.events, []byte("\n")))
	}
	if len(r.events) != len(evs) || r.footer() == nil {
		t.Errorf("reassembled %d events (footer %v), want the %d genuine ones", len(r.events), r.footer(), len(evs))
	}
	if r.err == nil || !strings.Contains(r.err.Error(), "forged frame") || r.forged != 2 || r.complete() {
		t.Errorf("err %v forged %d complete %v: want the stream marked damaged with 2 forged frames", r.err, r.forged, r.complete())
	}
	// A genuine frame signed under another run's key is refused too.
	var other bytes.Buffer
	fw := NewSignedFrameWriter(&other, []byte("another run's key, 32 bytes long"))
	for _, e := range evs {
		fw.Event(e)
	}
	if r := read(other.Bytes(), key); len(r.events) != 0 || r.forged != len(evs) {
		t.Errorf("frames under another key: %d events kept, %d refused", len(r.events), r.forged)
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
