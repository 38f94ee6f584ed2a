package transcript

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

// events returns a small transcript whose call result is a line of n
// bytes with multi-byte runes, longer than a container runtime's 16 KiB
// log line.
func events(n int) []*Event {
	big := strings.Repeat("é€x", n/6)
	return []*Event{
		{Type: TypeHeader, Version: Version, Name: "t", Runbook: "@kdiag//t.star"},
		{Type: TypeCall, Seq: 1, Builtin: "logs", Result: json.RawMessage(`{"text":"` + big + `"}`)},
		{Type: TypePrint, Seq: 2, Message: "kdiag-transcript 9 1/1 not a frame when inside a message"},
		{Type: TypeFooter, Seq: 3, Status: StatusOK},
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
	var r FrameReader
	var got [][]byte
	frames := 0
	for _, l := range bytes.Split(bytes.TrimSuffix(out.Bytes(), []byte("\n")), []byte("\n")) {
		if len(l) > 16<<10-64 {
			t.Fatalf("a frame of %d bytes would be split by the runtime", len(l))
		}
		frames++
		for range 3 {
			r.Line([]byte("  ▶ a progress line on stderr"))
		}
		if ev := r.Line(l); ev != nil {
			got = append(got, ev)
		}
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
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
	if !r.Complete() || r.Footer().Status != StatusOK {
		t.Fatalf("complete=%v footer=%+v", r.Complete(), r.Footer())
	}
	if len(r.Other()) != maxOtherLines {
		t.Fatalf("kept %d foreign lines, want the last %d", len(r.Other()), maxOtherLines)
	}
	// The reassembled lines form a transcript the strict reader accepts.
	tr, err := Read("stream", bytes.NewReader(append(bytes.Join(got, []byte("\n")), '\n')))
	if err != nil || tr.Footer == nil {
		t.Fatalf("read: %v", err)
	}
}

// TestFramesDamaged: a lost frame, a lost event and garbage are protocol
// errors, never silently a shorter
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
			var r FrameReader
			for i, l := range lines {
				if i != tc.drop {
					r.Line(l)
				}
			}
			if tc.add != "" {
				r.Line([]byte(tc.add))
			}
			if r.Complete() {
				t.Fatal("complete after damage")
			}
			if tc.want != "" && (r.Err() == nil || !strings.Contains(r.Err().Error(), tc.want)) {
				t.Fatalf("err %v, want %q", r.Err(), tc.want)
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
	read := func(b []byte, key []byte) *FrameReader {
		r := NewFrameReader(key)
		for _, l := range bytes.Split(b, []byte("\n")) {
			r.Line(l)
		}
		return r
	}

	var plain bytes.Buffer
	r := read(stream(NewFrameWriter(&plain), &plain), nil)
	if !bytes.Contains(bytes.Join(r.Events(), nil), []byte("configmap prod/victim")) {
		t.Fatalf("without a key the forged frame should be taken (the attack this test guards); events: %s", bytes.Join(r.Events(), []byte("\n")))
	}

	var signed bytes.Buffer
	r = read(stream(NewSignedFrameWriter(&signed, key), &signed), key)
	if bytes.Contains(bytes.Join(r.Events(), nil), []byte("victim")) {
		t.Fatalf("the forged frame was kept: %s", bytes.Join(r.Events(), []byte("\n")))
	}
	if len(r.Events()) != len(evs) || r.Footer() == nil {
		t.Errorf("reassembled %d events (footer %v), want the %d genuine ones", len(r.Events()), r.Footer(), len(evs))
	}
	if r.Err() == nil || !strings.Contains(r.Err().Error(), "forged frame") || r.Forged() != 2 || r.Complete() {
		t.Errorf("err %v forged %d complete %v: want the stream marked damaged with 2 forged frames", r.Err(), r.Forged(), r.Complete())
	}
	// A genuine frame signed under another run's key is refused too.
	var other bytes.Buffer
	fw := NewSignedFrameWriter(&other, []byte("another run's key, 32 bytes long"))
	for _, e := range evs {
		fw.Event(e)
	}
	if r := read(other.Bytes(), key); len(r.Events()) != 0 || r.Forged() != len(evs) {
		t.Errorf("frames under another key: %d events kept, %d refused", len(r.Events()), r.Forged())
	}
}
