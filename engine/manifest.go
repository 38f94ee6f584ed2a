package engine

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Manifest is a runbook repository's kdiag.yaml.
type Manifest struct {
	// Name is the repository's name, used as @NAME// in loads.
	Name string `yaml:"name"`
	// Version is the repository's own version.
	Version string `yaml:"version"`
	// Kdiag is the oldest kdiag version the repository works with, e.g. "0.1".
	Kdiag string `yaml:"kdiag"`
	// Description says what the repository holds.
	Description string `yaml:"description"`
}

// ReadManifest reads DIR/kdiag.yaml; a directory without one has a nil
// manifest and no error.
func ReadManifest(dir string) (*Manifest, error) {
	path := filepath.Join(dir, RepoManifest)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var m Manifest
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&m); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if m.Name != "" && !validRepoName(m.Name) {
		return nil, fmt.Errorf("%s: name %q: use letters, digits, - and _", path, m.Name)
	}
	return &m, nil
}

// CheckVersion reports an error when kdiag version v is older than the
// manifest requires. Development builds (no parsable version, or the
// pseudo-version v0.0.0-TIME-REV of a build from an untagged tree) pass.
func (m *Manifest) CheckVersion(path, v string) error {
	if m == nil || m.Kdiag == "" || strings.HasPrefix(v, "v0.0.0-") {
		return nil
	}
	want, ok := parseVersion(m.Kdiag)
	if !ok {
		return fmt.Errorf("%s: kdiag: %q is not a version like 0.2 or 1.0.3", path, m.Kdiag)
	}
	have, ok := parseVersion(v)
	if !ok {
		return nil
	}
	for i := range want {
		if have[i] != want[i] {
			if have[i] < want[i] {
				return fmt.Errorf("%s: repository %q needs kdiag %s or newer, this is %s; upgrade kdiag", path, m.Name, m.Kdiag, v)
			}
			return nil
		}
	}
	return nil
}

func parseVersion(s string) ([3]int, bool) {
	var out [3]int
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	s, _, _ = strings.Cut(s, "-")
	parts := strings.Split(s, ".")
	if len(parts) == 0 || len(parts) > 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}

func validRepoName(s string) bool {
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}
