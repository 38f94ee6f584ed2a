package repos

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostileLockAndRefs: a lock file or a --ref cannot pass git an
// option, and a malformed entry is refused with what to do.
func TestHostileLockAndRefs(t *testing.T) {
	dir := t.TempDir()
	l := &Lock{Path: filepath.Join(dir, LockName)}
	c := &Cache{Dir: filepath.Join(dir, "cache")}
	for _, ref := range []string{"--upload-pack=touch /tmp/x", "-x", "a b", "v1\n"} {
		if _, err := Add(context.Background(), l, c, "team", "file:///nowhere.git", ref); err == nil || !strings.Contains(err.Error(), "--ref") {
			t.Errorf("ref %q: %v", ref, err)
		}
	}
	if _, err := Add(context.Background(), l, c, "team", "--config=x", ""); err == nil || !strings.Contains(err.Error(), "URL") {
		t.Errorf("URL starting with -: %v", err)
	}
	bad := "repos:\n  - name: team\n    url: file:///x.git\n    ref: --output=/etc/passwd\n    ref_kind: tag\n    commit: " + strings.Repeat("a", 40) + "\n    digest: sha256:" + strings.Repeat("b", 64) + "\n"
	os.WriteFile(l.Path, []byte(bad), 0o644)
	if _, err := ReadLock(l.Path); err == nil || !strings.Contains(err.Error(), "re-add the repository") {
		t.Errorf("a lock with an option as ref: %v", err)
	}
}
