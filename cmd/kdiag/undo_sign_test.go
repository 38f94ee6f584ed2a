package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine/transcript"
)

// TestUndoVerifiesSignature: kdiag undo checks a signed transcript before
// anything else. A signed transcript needs the key; with the key, an
// altered or unsigned transcript is refused, and the genuine one passes.
func TestUndoVerifiesSignature(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "transcript.jsonl")
	body := `{"type":"header","version":1,"runbook":"x.star"}` + "\n" + `{"type":"footer","seq":1,"status":"ok"}` + "\n"
	os.WriteFile(path, []byte(body), 0o600)
	keyFile := filepath.Join(dir, "key")
	os.WriteFile(keyFile, []byte("transcript-signing-key\n"), 0o600)

	if err := verifySignature(path, keyFile); err == nil || !strings.Contains(err.Error(), "has no signature") {
		t.Errorf("unsigned transcript with a key: %v, want refused", err)
	}
	if err := transcript.Sign(path, []byte("transcript-signing-key")); err != nil {
		t.Fatal(err)
	}
	if err := verifySignature(path, keyFile); err != nil {
		t.Errorf("genuine signed transcript: %v", err)
	}
	if err := verifySignature(path, ""); err == nil || !strings.Contains(err.Error(), "give --transcript-key-file") {
		t.Errorf("signed transcript without the key: %v, want refused", err)
	}
	os.WriteFile(path, []byte(strings.Replace(body, `"status":"ok"`, `"status":"ok" `, 1)), 0o600)
	if err := verifySignature(path, keyFile); err == nil || !strings.Contains(err.Error(), "altered") {
		t.Errorf("altered transcript: %v, want refused", err)
	}
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("another key"), 0o600)
	os.WriteFile(path, []byte(body), 0o600)
	if err := verifySignature(path, other); err == nil {
		t.Error("a transcript verified under another key")
	}
}
