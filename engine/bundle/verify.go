package bundle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/kdiag/kdiag/engine"
)

// Verify checks a bundle's entries against its digest before anything
// from it is used: the manifest's sha256 must be digest, the manifest
// well-formed, and each file's content its listed sha256; an entry the
// manifest does not list is refused. Errors name the file and both
// digests.
func Verify(data map[string]string, digest string) (*Bundle, error) {
	if !digestRE.MatchString(digest) {
		return nil, fmt.Errorf("bundle: digest %q: want sha256: and 64 hex digits", trunc(digest))
	}
	raw, ok := data[ManifestKey]
	if !ok {
		return nil, fmt.Errorf("bundle %s: no %s", digest, ManifestKey)
	}
	total := 0
	for _, v := range data {
		total += len(v)
	}
	if total > MaxBytes {
		return nil, fmt.Errorf("bundle %s: %d bytes, over the limit of %d (1 MiB)", digest, total, MaxBytes)
	}
	sum := sha256.Sum256([]byte(raw))
	if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
		return nil, fmt.Errorf("bundle: %s has digest %s, the run expects %s: the bundle was changed after the server made it; refusing to run it", ManifestKey, got, digest)
	}
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("bundle %s: %s: %v", digest, ManifestKey, err)
	}
	if err := m.check(); err != nil {
		return nil, fmt.Errorf("bundle %s: %v", digest, err)
	}
	listed := map[string]bool{ManifestKey: true}
	for _, f := range m.Files {
		listed[f.Key] = true
		content, ok := data[f.Key]
		if !ok {
			return nil, fmt.Errorf("bundle %s: file %s (entry %s) is missing", digest, f.Name, f.Key)
		}
		sum := sha256.Sum256([]byte(content))
		if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
			return nil, fmt.Errorf("bundle %s: file %s (entry %s) has sha256 %s, the manifest says %s: the bundle was tampered with; refusing to run it", digest, f.Name, f.Key, got, f.SHA256)
		}
	}
	for k := range data {
		if !listed[k] {
			return nil, fmt.Errorf("bundle %s: entry %q is not in its manifest; refusing a bundle the server did not make", digest, trunc(k))
		}
	}
	return &Bundle{Manifest: m, Data: data, Digest: digest}, nil
}

// ReadDir reads a bundle mounted at dir (a ConfigMap volume) and
// verifies it with Verify. Only manifest.json and the entries it lists
// are read (by their fixed keys, never by a file name from the manifest);
// the kubelet's own ..data entries are skipped, any other entry refused.
func ReadDir(dir, digest string) (*Bundle, error) {
	read := func(key string, budget int) (string, error) {
		f, err := os.Open(filepath.Join(dir, key))
		if err != nil {
			return "", err
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, int64(budget)+1))
		if err != nil {
			return "", err
		}
		if len(b) > budget {
			return "", fmt.Errorf("bundle %s: %s: over the bundle limit of %d bytes (1 MiB)", digest, key, MaxBytes)
		}
		return string(b), nil
	}
	budget := MaxBytes
	raw, err := read(ManifestKey, budget)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("bundle: %s has no %s: not a bundle (is the ConfigMap mounted there?)", dir, ManifestKey)
	}
	if err != nil {
		return nil, fmt.Errorf("bundle: %v", err)
	}
	budget -= len(raw)
	// Nothing the manifest lists is read before it is known to be the
	// server's.
	if sum := sha256.Sum256([]byte(raw)); digestRE.MatchString(digest) && "sha256:"+hex.EncodeToString(sum[:]) != digest {
		return Verify(map[string]string{ManifestKey: raw}, digest)
	}
	data := map[string]string{ManifestKey: raw}
	var m Manifest
	if err := json.NewDecoder(bytes.NewReader([]byte(raw))).Decode(&m); err == nil && len(m.Files) <= maxFiles {
		for _, f := range m.Files {
			if !keyRE.MatchString(f.Key) || data[f.Key] != "" {
				continue // Verify refuses the manifest
			}
			c, err := read(f.Key, budget)
			if errors.Is(err, os.ErrNotExist) {
				continue // Verify names the missing file
			}
			if err != nil {
				return nil, fmt.Errorf("bundle: %v", err)
			}
			budget -= len(c)
			data[f.Key] = c
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("bundle: %v", err)
	}
	for _, e := range entries {
		if _, ok := data[e.Name()]; !ok && !strings.HasPrefix(e.Name(), "..") {
			return nil, fmt.Errorf("bundle %s: entry %q in %s is not in its manifest; refusing a bundle the server did not make", digest, trunc(e.Name()), dir)
		}
	}
	return Verify(data, digest)
}

// Loader returns a loader that reads the bundle's files only: each load()
// resolves as it did when the bundle was made, and files of pinned
// repositories are recorded with their provenance, as on the server.
func (b *Bundle) Loader() *engine.Loader {
	l := &engine.Loader{Recorded: map[string]string{}, Loads: map[string]string{}, Origins: map[string]engine.Origin{}, Repos: map[string]string{}}
	for _, f := range b.Manifest.Files {
		l.Recorded[f.Name] = b.Data[f.Key]
		// A repository must be known for @REPO// to resolve; its files
		// are read from Recorded only, never from this empty directory.
		if repo, _, ok := strings.Cut(strings.TrimPrefix(f.Name, "@"), "//"); ok && strings.HasPrefix(f.Name, "@") && repo != engine.BuiltinRepo {
			l.Repos[repo] = ""
		}
		if f.Repo != "" {
			l.Origins[f.Repo] = engine.Origin{URL: f.URL, Commit: f.Commit}
		}
	}
	for k, v := range b.Manifest.Loads {
		l.Loads[k] = v
	}
	return l
}
