package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestJUnitReport: kdiag test --junit writes JUnit XML that parses back
// with one case per test, the failing one carrying its message.
func TestJUnitReport(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "checks_test.star"), []byte(`
def test_good():
    assert.eq(1 + 1, 2)

def test_bad():
    assert.eq("a", "b")
`), 0o644)
	xmlPath := filepath.Join(t.TempDir(), "junit.xml")
	out, _, err := runKdiag("test", dir, "../../runbooks", "--junit", xmlPath)
	if err == nil || !strings.Contains(out, "1 failed") {
		t.Fatalf("kdiag test: %v\n%s", err, out)
	}
	b, err := os.ReadFile(xmlPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("the JUnit file does not parse: %v\n%s", err, b)
	}
	if len(doc.Suites) != 2 || doc.Failures != 1 || doc.Suites[0].Tests != 2 || doc.Suites[1].Tests < 100 || doc.Tests != doc.Suites[0].Tests+doc.Suites[1].Tests {
		t.Fatalf("suites %d, tests %d, failures %d", len(doc.Suites), doc.Tests, doc.Failures)
	}
	var failed *junitCase
	for i, c := range doc.Suites[0].Cases {
		if c.Failure != nil {
			failed = &doc.Suites[0].Cases[i]
		}
	}
	if failed == nil || !strings.Contains(failed.Name, "test_bad") || !strings.Contains(failed.Failure.Message, `"a"`) {
		t.Fatalf("failing case: %+v %+v", failed, failed.Failure)
	}
}

// TestLintJSON: kdiag lint -o json names the file, line and column of
// each problem, and exits non-zero when there are any.
func TestLintJSON(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bad.star")
	os.WriteFile(p, []byte("runbook(name = \"bad\", summary = \"b\")\ndef main(p):\n    get_pod(nope = 1)\n"), 0o644)
	out, _, err := runKdiag("lint", "-o", "json", p)
	if err == nil {
		t.Fatal("lint passed a bad runbook")
	}
	var doc struct {
		Runbooks int           `json:"runbooks"`
		Problems []lintProblem `json:"problems"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if doc.Runbooks != 1 || len(doc.Problems) != 1 || doc.Problems[0].File != p || doc.Problems[0].Line != 3 || !strings.Contains(doc.Problems[0].Message, `no argument "nope"`) {
		t.Fatalf("problems %+v", doc)
	}
	if _, _, err := runKdiag("lint", "-o", "yaml", p); err == nil || !strings.Contains(err.Error(), "want text or json") {
		t.Fatalf("-o yaml: %v", err)
	}
}

// TestRepoURLWithoutCredentials: what reaches a transcript or a report
// of a repository URL has no user information.
func TestRepoURLWithoutCredentials(t *testing.T) {
	for in, want := range map[string]string{
		"https://bot:ghp_secret@git.example.com/sre/runbooks.git": "https://git.example.com/sre/runbooks.git",
		"file:///srv/git/x.git":                                   "file:///srv/git/x.git",
		"git@github.com:sre/runbooks.git":                         "git@github.com:sre/runbooks.git",
		"ssh://git@git.example.com/sre/rb.git":                    "ssh://git.example.com/sre/rb.git",
	} {
		if got := display(in); got != want {
			t.Errorf("display(%q) = %q, want %q", in, got, want)
		}
	}
}
