package playbook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/repos"
)

// Repos are the server's pinned repositories (kdiag repo add): the
// server runs their locked commits and, on POST /repos/update or every
// repo_update.every, updates them as kdiag repo update does.
type Repos struct {
	// Lock is the lock file, read once; updates keep it in memory and
	// write it back when WriteLock is set.
	Lock *repos.Lock
	// Cache holds the repositories' clones and trees.
	Cache *repos.Cache
	// Base resolves everything but the pinned repositories: the built-in
	// library and unpinned repository directories, which win on a name.
	Base *engine.Loader
	// WriteLock saves each update to Lock.Path (an error is logged; the
	// update applies anyway).
	WriteLock bool
}

// RepoUpdate is what an update did to one repository.
type RepoUpdate struct {
	// Repo is the repository's name.
	Repo string `json:"repo"`
	// Result is unchanged, updated, refused (a moved tag, or an update
	// that would break a route) or failed (fetching).
	Result string `json:"result"`
	// From and To are the commits before and after.
	From string `json:"from"`
	To   string `json:"to,omitempty"`
	// Message says what happened.
	Message string `json:"message"`
}

// The results of a repository update.
const (
	RepoUnchanged = "unchanged"
	RepoUpdated   = "updated"
	RepoRefused   = "refused"
	RepoFailed    = "failed"
)

// repoUpdater updates a server's pinned repositories, one update at a
// time.
type repoUpdater struct {
	mu   sync.Mutex
	r    Repos
	lock *repos.Lock
}

// loader returns Base with the lock's repositories (their cached trees,
// checked against their digests) added under the names Base lacks.
func (u *repoUpdater) loader(ctx context.Context, l *repos.Lock) (*engine.Loader, error) {
	dirs, err := repos.Dirs(ctx, l, u.r.Cache)
	if err != nil {
		return nil, err
	}
	b := u.r.Base
	out := &engine.Loader{Builtin: b.Builtin, Repos: maps.Clone(b.Repos), Origins: maps.Clone(b.Origins)}
	if out.Repos == nil {
		out.Repos = map[string]string{}
	}
	if out.Origins == nil {
		out.Origins = map[string]engine.Origin{}
	}
	for _, e := range l.Repos {
		if _, unpinned := out.Repos[e.Name]; unpinned {
			continue
		}
		out.Repos[e.Name] = dirs[e.Name]
		out.Origins[e.Name] = engine.Origin{URL: repos.Display(e.URL), Commit: e.Commit}
	}
	return out, nil
}

// updateRepos fetches every pinned repository and moves branch pins to
// their new commits; a moved tag is refused. The new commits apply only
// if every route still loads with them (else none does); then the
// server's loader is swapped: runs in flight keep the files they loaded,
// runs started after name the new commits.
func (s *Server) updateRepos(ctx context.Context, why string) ([]RepoUpdate, error) {
	u := s.repos
	u.mu.Lock()
	defer u.mu.Unlock()
	next := u.lock.Clone()
	var out []RepoUpdate
	for _, e := range u.lock.Repos {
		ru := RepoUpdate{Repo: e.Name, From: e.Commit, Result: RepoUnchanged}
		one := u.lock.Clone()
		lines, err := repos.Update(ctx, one, u.r.Cache, []string{e.Name})
		var moved *repos.MovedTagError
		switch {
		case errors.As(err, &moved):
			ru.Result, ru.To, ru.Message = RepoRefused, moved.Now, err.Error()
		case err != nil:
			ru.Result, ru.Message = RepoFailed, err.Error()
		default:
			ne, _ := one.Get(e.Name)
			ru.To, ru.Message = ne.Commit, lines[0]
			if ne.Commit != e.Commit {
				ru.Result = RepoUpdated
				pe, _ := next.Get(e.Name)
				*pe = *ne
			}
		}
		out = append(out, ru)
	}
	changed := slices.ContainsFunc(out, func(ru RepoUpdate) bool { return ru.Result == RepoUpdated })
	var err error
	if changed {
		err = s.applyRepos(ctx, next)
		if err != nil {
			for i := range out {
				if out[i].Result == RepoUpdated {
					out[i].Result, out[i].Message = RepoRefused, err.Error()
				}
			}
		}
	}
	for _, ru := range out {
		s.metrics.repoUpdated(ru.Repo, ru.Result)
		level := s.log.Info
		if ru.Result == RepoRefused || ru.Result == RepoFailed {
			level = s.log.Warn
		}
		level("repository update", "repo", ru.Repo, "result", ru.Result, "from", short12(ru.From), "to", short12(ru.To), "why", why, "message", ru.Message)
	}
	if err == nil && slices.ContainsFunc(out, func(ru RepoUpdate) bool { return ru.Result == RepoRefused || ru.Result == RepoFailed }) {
		err = errors.New("some repositories were not updated")
	}
	return out, err
}

// applyRepos checks the routes against the lock next and, if they all
// still load (and their bundles fit), makes it the server's.
func (s *Server) applyRepos(ctx context.Context, next *repos.Lock) error {
	u := s.repos
	l, err := u.loader(ctx, next)
	if err != nil {
		return err
	}
	if _, err := compileRoutes(s.cfg, s.specs, l); err != nil {
		return fmt.Errorf("not applied: with the new commits %v", err)
	}
	if s.bundles {
		for _, r := range s.routes {
			if _, err := s.bundleOf(r.module, l); err != nil {
				return fmt.Errorf("not applied: with the new commits route %q: %v", r.name, err)
			}
		}
	}
	s.loader.Store(l)
	u.lock = next
	s.metrics.repoCommits(next)
	if u.r.WriteLock {
		if err := next.Write(); err != nil {
			s.log.Error("repository update applied but not saved to the lock file", "lock", next.Path, "err", err)
		}
	}
	return nil
}

// startUpdates updates the repositories every d until the server closes;
// Close waits for an update in progress.
func (s *Server) startUpdates(d time.Duration) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.updateEvery(d)
	}()
}

// updateEvery updates the repositories every d until the server closes.
func (s *Server) updateEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-s.runsCtx.Done():
			return
		case <-t.C:
			s.updateRepos(s.runsCtx, "schedule")
		}
	}
}

func short12(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// RepoUpdateResponse is the answer of POST /repos/update.
type RepoUpdateResponse struct {
	// Repos are the repositories' results.
	Repos []RepoUpdate `json:"repos"`
	// Error, if set, says why some were not updated.
	Error string `json:"error,omitempty"`
}

// handleRepoUpdate is POST /repos/update: it updates the pinned
// repositories now and answers 200 with each one's result, or 409 when
// some were refused or failed. It needs the alert senders' credentials
// (the bearer token or an HMAC signature of the body), and is refused on
// a server with no authentication.
func (s *Server) handleRepoUpdate(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Auth.Insecure {
		http.Error(w, "repository updates need authentication: configure auth.token_file or auth.hmac_secret_file (this server runs with auth.insecure)", http.StatusForbidden)
		return
	}
	authed, err := s.auth.early(r)
	if err == nil && !authed {
		body, rerr := io.ReadAll(io.LimitReader(r.Body, 4<<10))
		if rerr != nil {
			http.Error(w, "reading the body: "+rerr.Error(), http.StatusBadRequest)
			return
		}
		err = s.auth.late(r, body)
	}
	if err != nil {
		s.log.Warn("repository update refused", "remote", r.RemoteAddr, "err", err)
		w.Header().Set("WWW-Authenticate", `Bearer realm="kdiag"`)
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	if s.repos == nil {
		http.Error(w, "this server has no pinned repositories (kdiag repo add, and kdiag serve --lock)", http.StatusNotFound)
		return
	}
	res, err := s.updateRepos(r.Context(), "webhook")
	resp := RepoUpdateResponse{Repos: res}
	code := http.StatusOK
	if err != nil {
		resp.Error, code = err.Error(), http.StatusConflict
	}
	writeJSON(w, code, resp)
}
