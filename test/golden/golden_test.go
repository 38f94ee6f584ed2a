// Package golden replays every committed example transcript with no
// cluster and checks that it renders its committed report byte for byte.
package golden

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/report"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/runbooks"
)

func TestExampleTranscriptsReplayToTheirReports(t *testing.T) {
	paths, _ := filepath.Glob(filepath.Join("..", "..", "examples", "*", "transcript.jsonl"))
	if len(paths) == 0 {
		t.Fatal("no example transcripts found")
	}
	for _, p := range paths {
		t.Run(filepath.Base(filepath.Dir(p)), func(t *testing.T) {
			tr, err := transcript.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			loader := &engine.Loader{Builtin: runbooks.FS, Recorded: map[string]string{}, Loads: tr.Header.Loads}
			for _, f := range tr.Header.Files {
				loader.Recorded[f.Path] = f.Source
			}
			// A kubeconfig that does not exist: replay must never connect.
			cfg := builtins.Config{Kubeconfig: "/nonexistent/kubeconfig", RuntimeEndpoint: "unix:///nonexistent.sock"}
			res := engine.Run(context.Background(), tr.Header.Runbook, engine.Options{Specs: builtins.All(cfg), Loader: loader, Replay: tr})
			if res.Err != nil {
				t.Fatalf("replay: %v", res.Err)
			}
			var got bytes.Buffer
			if err := report.Render(&got, res.Transcript(), "text"); err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join(filepath.Dir(p), "report.txt"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Fatalf("replayed report differs from report.txt:\n%s\n--- want\n%s", got.String(), want)
			}
		})
	}
}
