package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
)

var benchSpecs = []*engine.Spec{{
	Name:   "probe",
	Params: []engine.Param{{Name: "i", Type: "int", Required: true}, {Name: "namespace", Type: "string", Default: "default"}},
	Effect: engine.Read,
	Run: func(ctx context.Context, c *engine.Call) (any, error) {
		return map[string]any{"ok": true, "i": c.Args.Int("i"), "status": 200, "body": "ready"}, nil
	},
}}

func loopRunbook(b *testing.B, n int) string {
	p := filepath.Join(b.TempDir(), "loop.star")
	src := fmt.Sprintf("def main(p):\n    for i in range(%d):\n        r = probe(i)\n        if not r.ok:\n            fail('bad')\n", n)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkRecordedCall measures the engine's overhead per recorded call:
// argument binding, the wrapper, JSON encoding and redaction, the
// transcript write, and decoding the result into a Starlark value.
func BenchmarkRecordedCall(b *testing.B) {
	path := loopRunbook(b, b.N)
	w, err := transcript.Create(filepath.Join(b.TempDir(), "t.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	b.ReportAllocs()
	b.ResetTimer()
	res := engine.Run(context.Background(), path, engine.Options{Specs: benchSpecs, Writer: w})
	if res.Err != nil {
		b.Fatal(res.Err)
	}
}

// BenchmarkReplay10k replays a 10,000-call transcript; calls/s is the
// replay throughput.
func BenchmarkReplay10k(b *testing.B) {
	const calls = 10_000
	path := loopRunbook(b, calls)
	tp := filepath.Join(b.TempDir(), "t.jsonl")
	w, _ := transcript.Create(tp)
	if res := engine.Run(context.Background(), path, engine.Options{Specs: benchSpecs, Writer: w}); res.Err != nil {
		b.Fatal(res.Err)
	}
	w.Close()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr, err := transcript.ReadFile(tp)
		if err != nil {
			b.Fatal(err)
		}
		res := engine.Run(context.Background(), path, engine.Options{Specs: benchSpecs, Replay: tr})
		if res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	b.ReportMetric(float64(calls*b.N)/b.Elapsed().Seconds(), "calls/s")
}
