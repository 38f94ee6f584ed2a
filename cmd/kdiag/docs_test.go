package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/kdiag/kdiag/builtins"
)

// TestBuiltinsDocIsFresh fails when docs/builtins.md no longer matches the
// built-ins' declarations.
func TestBuiltinsDocIsFresh(t *testing.T) {
	var b bytes.Buffer
	writeBuiltinsMarkdown(&b, builtins.All(builtins.Config{}))
	path := filepath.Join("..", "..", "docs", "builtins.md")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; generate it with make docs", err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("%s is stale: regenerate it with `make docs` and commit it", path)
	}
}

// TestRunbooksDocIsFresh fails when docs/runbooks.md no longer matches
// the built-in library's runbooks.
func TestRunbooksDocIsFresh(t *testing.T) {
	var b bytes.Buffer
	if err := writeRunbooksMarkdown(&b, &globalFlags{}, builtins.All(builtins.Config{})); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "runbooks.md")
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v; generate it with make docs", err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("%s is stale: regenerate it with `make docs` and commit it", path)
	}
}

// TestEveryBuiltinIsDocumented checks the declarations docs are made from.
func TestEveryBuiltinIsDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range builtins.All(builtins.Config{}) {
		if seen[s.Name] {
			t.Errorf("built-in %s declared twice", s.Name)
		}
		seen[s.Name] = true
		if s.Doc == "" || s.Run == nil || s.Effect == "" {
			t.Errorf("built-in %s lacks doc, implementation or effect", s.Name)
		}
		for _, p := range s.Params {
			if p.Doc == "" {
				t.Errorf("built-in %s: param %s has no doc", s.Name, p.Name)
			}
		}
		if s.Effect == "write" && s.Undo == nil {
			t.Logf("built-in %s changes the cluster and has no Undo", s.Name)
		}
	}
}
