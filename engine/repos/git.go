package repos

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Limits on what a repository may hold: a runbook repository is text.
const (
	maxTreeBytes = 64 << 20
	maxTreeFiles = 10000
	gitTimeout   = 2 * time.Minute
)

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)
var shortCommitRE = regexp.MustCompile(`^[0-9a-f]{7,40}$`)

// Cache holds a bare clone per repository URL and the extracted tree of
// each pinned commit.
type Cache struct {
	// Dir is the cache's directory (DefaultCacheDir).
	Dir string
	// Git is the git binary; "" is "git" from $PATH.
	Git string
}

func (c *Cache) bare(url string) string {
	h := sha256.Sum256([]byte(url))
	return filepath.Join(c.Dir, "git", hex.EncodeToString(h[:10])+".git")
}

func (c *Cache) tree(commit string) string { return filepath.Join(c.Dir, "trees", commit) }

// git runs git with a deadline and no prompts; its error carries git's
// own message.
func (c *Cache) git(ctx context.Context, args ...string) (string, error) {
	bin := c.Git
	if bin == "" {
		bin = "git"
	}
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	// Only the transports a runbook repository needs (no ext::, fd::).
	cmd.Env = append(os.Environ(), "GIT_TERMINAL_PROMPT=0", "GIT_ASKPASS=true", "LC_ALL=C", "GIT_ALLOW_PROTOCOL=file:git:http:https:ssh")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			return "", fmt.Errorf("repo: the git command is needed to fetch repositories (%v); install git", err)
		}
		msg := strings.TrimSpace(errb.String())
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:]
		}
		return "", fmt.Errorf("git %s: %s", args[len(args)-1], strings.TrimPrefix(msg, "fatal: "))
	}
	return strings.TrimSpace(out.String()), nil
}

// fetch makes the bare clone of url current (cloning it the first time).
func (c *Cache) fetch(ctx context.Context, url string) error {
	dir := c.bare(url)
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return fmt.Errorf("repo: %v", err)
		}
		tmp := dir + ".tmp"
		os.RemoveAll(tmp)
		if _, err := c.git(ctx, "clone", "--bare", "--quiet", "--", url, tmp); err != nil {
			return fmt.Errorf("repo: cloning %s: %v", url, err)
		}
		return os.Rename(tmp, dir)
	}
	if _, err := c.git(ctx, "--git-dir", dir, "fetch", "--quiet", "--prune", "--prune-tags", "--force", "--", url,
		"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return fmt.Errorf("repo: fetching %s: %v", url, err)
	}
	return nil
}

// resolve returns the commit ref names in the bare clone of url and what
// kind of ref it is: head (""), commit, tag or branch.
func (c *Cache) resolve(ctx context.Context, url, ref string) (commit, kind string, err error) {
	dir := c.bare(url)
	try := func(r string) string {
		out, err := c.git(ctx, "--git-dir", dir, "rev-parse", "--verify", "--quiet", r+"^{commit}")
		if err != nil {
			return ""
		}
		return out
	}
	switch {
	case ref == "":
		if h := try("HEAD"); h != "" {
			return h, "head", nil
		}
		return "", "", fmt.Errorf("repo: %s has no default branch; give --ref", url)
	case shortCommitRE.MatchString(ref):
		if h := try(ref); h != "" && strings.HasPrefix(h, ref) {
			return h, "commit", nil
		}
	}
	if h := try("refs/tags/" + ref); h != "" {
		return h, "tag", nil
	}
	if h := try("refs/heads/" + ref); h != "" {
		return h, "branch", nil
	}
	return "", "", fmt.Errorf("repo: %q is neither a tag, a branch nor a commit of %s", ref, url)
}

// isAncestor reports whether old is an ancestor of new in url's clone.
func (c *Cache) isAncestor(ctx context.Context, url, old, new string) bool {
	_, err := c.git(ctx, "--git-dir", c.bare(url), "merge-base", "--is-ancestor", old, new)
	return err == nil
}

// extract returns the tree of commit, writing it from the bare clone of
// url when it is not in the cache yet.
func (c *Cache) extract(ctx context.Context, url, commit string) (string, error) {
	dir := c.tree(commit)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	if _, err := os.Stat(c.bare(url)); err != nil {
		return "", fmt.Errorf("repo: commit %s of %s is not in the cache (%s); run kdiag repo update (it needs the remote)", commit[:12], url, c.Dir)
	}
	bin := c.Git
	if bin == "" {
		bin = "git"
	}
	ctx, cancel := context.WithTimeout(ctx, gitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--git-dir", c.bare(url), "archive", "--format=tar", commit)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("repo: git archive: %v", err)
	}
	tmp := dir + ".tmp"
	os.RemoveAll(tmp)
	uerr := untar(out, tmp)
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if uerr == nil && werr != nil {
		uerr = fmt.Errorf("repo: git archive %s: %s", commit[:12], strings.TrimSpace(errb.String()))
	}
	if uerr != nil {
		os.RemoveAll(tmp)
		return "", uerr
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("repo: %v", err)
	}
	return dir, nil
}

// untar writes the regular files and directories of a tar stream under
// dir, within the limits; links and other entries are skipped.
func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	var total int64
	files := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("repo: reading the tree: %v", err)
		}
		name := filepath.Clean("/" + h.Name)[1:]
		if name == "" || name == "pax_global_header" {
			continue
		}
		p := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			files++
			total += h.Size
			if files > maxTreeFiles || total > maxTreeBytes {
				return fmt.Errorf("repo: the tree has more than %d files or %d MiB; a runbook repository should hold runbooks", maxTreeFiles, maxTreeBytes>>20)
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o644)
			if err != nil {
				return err
			}
			_, err = io.Copy(f, io.LimitReader(tr, h.Size))
			f.Close()
			if err != nil {
				return err
			}
		}
	}
}

// Digest is the sha256 of a tree's regular files: for each, in path
// order, its slash-separated path, a NUL, the hex sha256 of its content
// and a newline. It is "sha256:" and 64 hex digits.
func Digest(dir string) (string, error) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			paths = append(paths, filepath.ToSlash(rel))
		} else if !d.IsDir() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("repo: digest of %s: %v", dir, err)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, rel := range paths {
		b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return "", fmt.Errorf("repo: digest: %v", err)
		}
		fh := sha256.Sum256(b)
		fmt.Fprintf(h, "%s\x00%s\n", rel, hex.EncodeToString(fh[:]))
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}
