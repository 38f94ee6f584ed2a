package playbook

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDefaultExecutor(t *testing.T) {
	token := filepath.Join(t.TempDir(), "token")
	old := serviceAccountToken
	serviceAccountToken = token
	defer func() { serviceAccountToken = old }()

	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if got := DefaultExecutor(); got != "local" {
		t.Errorf("outside a cluster: %q, want local", got)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
	if got := DefaultExecutor(); got != "local" {
		t.Errorf("host set but no token: %q, want local", got)
	}
	os.WriteFile(token, []byte("x"), 0o600)
	if got := DefaultExecutor(); got != "job" {
		t.Errorf("in a pod: %q, want job", got)
	}
}
