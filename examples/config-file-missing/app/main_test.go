package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestLoadTakesTheFirstExistingPath(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "config.yaml")
	present := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(present, []byte("mode: on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if p, n, ok := load([]string{missing, present}); !ok || p != present || n != 9 {
		t.Fatalf("load = %q, %d, %v; want %q, 9, true", p, n, ok, present)
	}
	if _, _, ok := load([]string{missing}); ok {
		t.Fatal("load found a file that does not exist")
	}
}
