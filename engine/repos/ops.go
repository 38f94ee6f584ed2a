package repos

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Add fetches url, pins ref ("" for the default branch) to its commit and
// the digest of its tree, and adds the entry name to the lock (not yet
// written); it returns a copy of the entry. A name already in the lock is
// an error.
func Add(ctx context.Context, l *Lock, c *Cache, name, url, ref string) (*Entry, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("repo add: name %q: use letters, digits, - and _ (it is how runbooks load from it: @%s//...)", name, name)
	}
	if ref != "" && !refRE.MatchString(ref) {
		return nil, fmt.Errorf("repo add: --ref %q: want a tag, a branch or a commit (letters, digits, ., _, / and -, not starting with -)", ref)
	}
	if url == "" || strings.HasPrefix(url, "-") {
		return nil, fmt.Errorf("repo add: URL %q: want file://, https:// or an ssh address", url)
	}
	if _, ok := l.Get(name); ok {
		return nil, fmt.Errorf("repo add: %q is already in %s; kdiag repo update %s, or remove it first", name, l.Path, name)
	}
	if err := c.fetch(ctx, url); err != nil {
		return nil, err
	}
	commit, kind, err := c.resolve(ctx, url, ref)
	if err != nil {
		return nil, err
	}
	dir, err := c.extract(ctx, url, commit)
	if err != nil {
		return nil, err
	}
	digest, err := Digest(dir)
	if err != nil {
		return nil, err
	}
	e := Entry{Name: name, URL: url, Ref: ref, RefKind: kind, Commit: commit, Digest: digest, Fetched: time.Now().UTC().Truncate(time.Second)}
	l.Repos = append(l.Repos, e)
	return &e, nil
}

// Update fetches the named repositories (all when names is empty) and
// moves each branch or default-branch entry to the commit it now names.
// A tag that moved is an error, not an upgrade; an entry pinned to a
// commit stays. It returns one line per repository saying what changed.
func Update(ctx context.Context, l *Lock, c *Cache, names []string) ([]string, error) {
	if len(names) == 0 {
		for _, e := range l.Repos {
			names = append(names, e.Name)
		}
	}
	var out []string
	for _, n := range names {
		e, ok := l.Get(n)
		if !ok {
			return out, fmt.Errorf("repo update: no repository %q in %s (kdiag repo list)", n, l.Path)
		}
		if err := c.fetch(ctx, e.URL); err != nil {
			return out, err
		}
		commit, _, err := c.resolve(ctx, e.URL, e.Ref)
		if err != nil {
			return out, err
		}
		switch {
		case commit == e.Commit:
			out = append(out, fmt.Sprintf("%s: %s unchanged at %s", n, refName(e), commit[:12]))
			continue
		case e.RefKind == "tag":
			return out, &MovedTagError{Name: n, Ref: e.Ref, URL: e.URL, Pinned: e.Commit, Now: commit}
		case e.RefKind == "commit":
			out = append(out, fmt.Sprintf("%s: pinned to commit %s", n, e.Commit[:12]))
			continue
		}
		dir, err := c.extract(ctx, e.URL, commit)
		if err != nil {
			return out, err
		}
		digest, err := Digest(dir)
		if err != nil {
			return out, err
		}
		note := ""
		if !c.isAncestor(ctx, e.URL, e.Commit, commit) {
			note = " (force-pushed: the old commit is not an ancestor of the new one)"
		}
		out = append(out, fmt.Sprintf("%s: %s %s -> %s%s", n, refName(e), e.Commit[:12], commit[:12], note))
		e.Commit, e.Digest, e.Fetched = commit, digest, time.Now().UTC().Truncate(time.Second)
	}
	return out, nil
}

// Remove drops the entry name from the lock (not yet written); the cache
// keeps its trees.
func Remove(l *Lock, name string) error {
	if !l.remove(name) {
		return fmt.Errorf("repo remove: no repository %q in %s", name, l.Path)
	}
	return nil
}

// Dirs returns the directory of each pinned repository's tree, by name,
// from the cache alone (offline), extracting a tree again from the cached
// clone when it is missing. A tree whose digest is not the lock's is an
// error: the cache was changed, or the lock edited by hand.
func Dirs(ctx context.Context, l *Lock, c *Cache) (map[string]string, error) {
	m := map[string]string{}
	for _, e := range l.Repos {
		dir, err := c.extract(ctx, e.URL, e.Commit)
		if err != nil {
			return nil, fmt.Errorf("repository %s (%s): %v", e.Name, l.Path, err)
		}
		d, err := Digest(dir)
		if err != nil {
			return nil, err
		}
		if d != e.Digest {
			return nil, fmt.Errorf("repository %s: the cached tree of commit %s (%s) has digest %s, the lock %s says %s: the cache was modified or the lock edited; remove %s to fetch it again", e.Name, e.Commit[:12], dir, short(d), l.Path, short(e.Digest), dir)
		}
		m[e.Name] = dir
	}
	return m, nil
}

func refName(e *Entry) string {
	if e.Ref == "" {
		return "default branch"
	}
	return e.RefKind + " " + e.Ref
}

func short(d string) string {
	if len(d) > 19 {
		return d[:19]
	}
	return d
}

// MovedTagError is an update refused because a pinned tag now names
// another commit.
type MovedTagError struct {
	// Name, Ref and URL say which repository and tag.
	Name, Ref, URL string
	// Pinned is the locked commit, Now the one the tag names today.
	Pinned, Now string
}

func (e *MovedTagError) Error() string {
	return fmt.Sprintf("repo update: tag %s of %s moved from %s to %s: refusing (a release tag should not move); pin the new commit with kdiag repo remove %s and kdiag repo add %s %s --ref %s if you trust it",
		e.Ref, e.URL, e.Pinned[:12], e.Now[:12], e.Name, e.Name, e.URL, e.Now)
}

// Clone returns a deep copy of the lock, for an update that may be
// discarded.
func (l *Lock) Clone() *Lock {
	c := &Lock{Path: l.Path, Repos: append([]Entry(nil), l.Repos...)}
	return c
}

// Display is a repository URL without its user information (a token in
// an https URL never reaches a transcript, a report or a log).
func Display(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || !strings.Contains(raw, "://") {
		return raw
	}
	u.User = nil
	return u.String()
}
