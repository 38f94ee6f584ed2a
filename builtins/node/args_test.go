package node

import (
	"os"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine"
)

func TestRedaction(t *testing.T) {
	for _, tc := range []struct{ name, value, want string }{
		{"SECRET_TOKEN", "hunter2", engine.Redacted},
		{"db_password", "x", engine.Redacted},
		{"AWS_SECRET_ACCESS_KEY", "x", engine.Redacted},
		{"GITHUB_AUTH", "x", engine.Redacted},
		{"API_KEY", "x", engine.Redacted},
		{"DATABASE_URL", "postgres://app:pa55@db:5432/x", "postgres://app:" + engine.Redacted + "@db:5432/x"},
		{"UPSTREAM", "http://user@host/", "http://user@host/"},
		{"PATH", "/usr/bin:/bin", "/usr/bin:/bin"},
		{"PORT", "3000", "3000"},
		{"EMPTY_TOKEN", "", ""},
	} {
		if got, _ := redactEnv(tc.name, tc.value); got != tc.want {
			t.Errorf("redactEnv(%s=%s) = %q, want %q", tc.name, tc.value, got, tc.want)
		}
	}
	for h, want := range map[string]bool{"Authorization": true, "Cookie": true, "Set-Cookie": true, "X-Api-Key": true, "Proxy-Authorization": true, "Content-Type": false, "Host": false} {
		if got := redactHeader(h, "v") == engine.Redacted; got != want {
			t.Errorf("redactHeader(%s) redacted=%v, want %v", h, got, want)
		}
	}
}

func TestCommandArg(t *testing.T) {
	got, err := commandArg("ls | wc -l")
	if err != nil || strings.Join(got, "|") != "/bin/sh|-c|ls | wc -l" {
		t.Errorf("string cmd = %q, %v", got, err)
	}
	got, err = commandArg([]any{"ls", "-l"})
	if err != nil || strings.Join(got, " ") != "ls -l" {
		t.Errorf("list cmd = %q, %v", got, err)
	}
	for _, bad := range []any{"", []any{}, []any{"ls", int64(3)}, int64(1)} {
		if _, err := commandArg(bad); engine.KindOf(err) != engine.KindInvalid || !strings.HasPrefix(err.Error(), "run: ") {
			t.Errorf("commandArg(%v) = %v", bad, err)
		}
	}
}

func TestTargetArg(t *testing.T) {
	h := map[string]any{"pid": int64(7), "namespaces": []any{"net", "mnt"}, "inodes": map[string]any{"net": "net:[1]", "mnt": "mnt:[2]"}}
	tg, err := targetArg("x", engine.Args{"ns": h}, true)
	if err != nil || tg.PID != 7 || !tg.Handle.Has("mnt") || tg.Handle.Has("pid") {
		t.Errorf("targetArg(ns) = %+v, %v", tg, err)
	}
	if tg, err := targetArg("x", engine.Args{}, false); tg != nil || err != nil {
		t.Errorf("optional target = %+v, %v", tg, err)
	}
	for _, tc := range []struct {
		args engine.Args
		want string
	}{
		{engine.Args{}, "x: give pid="},
		{engine.Args{"pid": int64(-1)}, "x: pid must be a positive"},
		{engine.Args{"pid": int64(8), "ns": h}, "x: pid=8 and ns= (a handle on process 7) disagree"},
		{engine.Args{"ns": map[string]any{"pid": int64(7)}}, "x: ns= must be the record enter_ns returned"},
		{engine.Args{"ns": map[string]any{"pid": int64(7), "namespaces": []any{"net"}, "inodes": map[string]any{}}}, `x: ns= handle on process 7 has no inode for namespace "net"`},
		{engine.Args{"ns": map[string]any{"pid": int64(7), "namespaces": []any{"time"}, "inodes": map[string]any{}}}, `x: unknown namespace "time"`},
	} {
		_, err := targetArg("x", tc.args, true)
		if engine.KindOf(err) != engine.KindInvalid || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("targetArg(%v) = %v, want %q", tc.args, err, tc.want)
		}
	}
}

func TestCappedBuffer(t *testing.T) {
	b := newCappedBuffer(5)
	for _, s := range []string{"ab", "cde", "fgh"} {
		if n, err := b.Write([]byte(s)); n != len(s) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if b.String() != "abcde" || !b.Truncated() {
		t.Errorf("kept %q truncated=%v", b.String(), b.Truncated())
	}
}

func TestSpecsAreDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Specs() {
		if seen[s.Name] || s.Doc == "" || s.Result == "" || s.Effect != engine.Read || s.Run == nil {
			t.Errorf("spec %s: duplicate, undocumented or not a read", s.Name)
		}
		seen[s.Name] = true
		for _, p := range s.Params {
			if p.Doc == "" || p.Type == "" {
				t.Errorf("%s(%s): no doc or type", s.Name, p.Name)
			}
		}
	}
	// Each is in the package doc's list.
	doc, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	for name := range seen {
		if !strings.Contains(string(doc), "\n//\t"+name+" ") {
			t.Errorf("%s is not in the list of doc.go", name)
		}
	}
	if len(seen) < 12 {
		t.Errorf("%d built-ins, want at least 12", len(seen))
	}
}
