package playbook

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/runbooks"
)

// Options are what a Server needs besides its Config.
type Options struct {
	// Specs are the built-ins runbooks may call: routes are checked
	// against them, and the default Local executor runs with them.
	Specs []*engine.Spec
	// Loader resolves runbooks; nil means Config.Loader over the built-in
	// library.
	Loader *engine.Loader
	// Executor runs the runbooks; nil means a Local executor over Specs
	// and Loader, which the config's executor must then name ("local").
	Executor Executor
	// StoreDir overrides the config's store directory.
	StoreDir string
	// Logger receives one line per alert decision and run; nil discards.
	Logger *slog.Logger
	// Version is kdiag's version, recorded in transcripts.
	Version string
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Repos, if set, are the pinned repositories: the server's Loader is
	// Repos.Base with them, and POST /repos/update (and repo_update.every)
	// updates them.
	Repos *Repos
	// Pods finds the pods of fan-out routes' sets (KubePods); a config
	// with a fanout route needs it.
	Pods PodResolver
}

// ErrShutdown is the cause given to runs cancelled by a server shutdown.
var ErrShutdown = errors.New("the server is shutting down")

// Server receives alerts and runs playbooks. Create it with New, serve it
// with Serve (or mount Handler and call Close when done).
type Server struct {
	cfg      *Config
	routes   []*route
	auth     *authenticator
	store    *Store
	exec     Executor
	pods     PodResolver
	log      *slog.Logger
	now      func() time.Time
	metrics  *metrics
	notifier *notifier

	runsCtx  context.Context
	stopRuns context.CancelCauseFunc
	wg       sync.WaitGroup
	slots    chan struct{}

	mu       sync.Mutex
	closed   bool
	runs     map[string]*Meta
	lastRun  map[string]string // alert fingerprint → id of its latest run
	setKeys  map[string]string // a set's route, namespace and selector → id of its latest run
	waiting  int
	inflight int

	conns     *connLimiter  // set by Serve
	preAuth   chan struct{} // slots for bodies read before authentication
	readToken [32]byte      // sha256 of the read token
	hasRead   bool
	signKey   []byte // signs finished transcripts, if set
	cache     runCache

	specs   []*engine.Spec
	loader  atomic.Pointer[engine.Loader] // swapped by a repository update
	bundles bool                          // the executor takes bundles
	repos   *repoUpdater                  // nil without Options.Repos
}

// Loader returns a loader over base's library and repositories plus the
// config's repositories (directories relative to the config file).
func (c *Config) Loader(base *engine.Loader) *engine.Loader {
	l := &engine.Loader{Builtin: runbooks.FS, Repos: map[string]string{}}
	if base != nil {
		l.Builtin = base.Builtin
		for k, v := range base.Repos {
			l.Repos[k] = v
		}
	}
	for k, v := range c.Repos {
		l.Repos[k] = c.Abs(v)
	}
	return l
}

// New checks cfg against the built-ins and runbooks (each route's runbook
// must resolve and load, its params must be the runbook's, allow_builtins
// must name write built-ins), reads the auth secrets, opens the store and
// recovers the runs it holds. Errors name the config file and line.
func New(cfg *Config, opts Options) (*Server, error) {
	var updater *repoUpdater
	if opts.Repos != nil {
		updater = &repoUpdater{r: *opts.Repos, lock: opts.Repos.Lock}
		l, err := updater.loader(context.Background(), updater.lock)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", cfg.Path, err)
		}
		opts.Loader = l
	}
	if opts.Loader == nil {
		opts.Loader = cfg.Loader(nil)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, log: opts.Logger, now: opts.Now, exec: opts.Executor,
		runs: map[string]*Meta{}, lastRun: map[string]string{}, setKeys: map[string]string{}, slots: make(chan struct{}, cfg.Concurrency),
		preAuth: make(chan struct{}, max(1, cfg.MaxUnauthenticatedBodies))}
	if s.exec == nil {
		if cfg.Executor != "local" {
			return nil, cfg.errorf(p("executor"), "executor %s needs a Kubernetes client: set Options.Executor (job.New of package playbook/job; kdiag serve does)", cfg.Executor)
		}
		s.exec = &Local{Specs: opts.Specs, Loader: opts.Loader, Version: opts.Version, MaxSteps: engine.DefaultMaxSteps}
	}
	var err error
	if s.routes, err = compileRoutes(cfg, opts.Specs, opts.Loader); err != nil {
		return nil, err
	}
	s.specs, s.repos, s.pods = opts.Specs, updater, opts.Pods
	for _, r := range s.routes {
		if r.fanout != nil && s.pods == nil {
			return nil, cfg.errorf(p("routes", r.index, "fanout"), "route %q: fanout needs a Kubernetes client to find the pods: set Options.Pods (playbook.KubePods; kdiag serve does)", r.name)
		}
	}
	s.loader.Store(opts.Loader)
	if bt, ok := s.exec.(bundleTaker); ok && bt.TakesBundles() {
		s.bundles = true
		for _, r := range s.routes {
			if _, err := s.bundleOf(r.module, opts.Loader); err != nil {
				return nil, cfg.errorf(p("routes", r.index, "runbook"), "route %q: executor %s: %v", r.name, s.exec.Name(), err)
			}
		}
	}
	if s.auth, err = newAuthenticator(cfg); err != nil {
		return nil, err
	}
	if tok, err := readSecret(cfg, "auth", "read_token", cfg.Auth.ReadTokenFile, cfg.Auth.ReadTokenEnv); err != nil {
		return nil, err
	} else if tok != nil {
		s.readToken, s.hasRead = sha256.Sum256(tok), true
	}
	if s.signKey, err = readSecret(cfg, "transcript", "key", cfg.TranscriptKeyFile, cfg.TranscriptKeyEnv); err != nil {
		return nil, err
	}
	if s.notifier, err = newNotifier(cfg, s.log); err != nil {
		return nil, err
	}
	dir := opts.StoreDir
	if dir == "" {
		dir = cfg.Abs(cfg.Store)
	}
	if s.store, err = OpenStore(dir); err != nil {
		return nil, err
	}
	s.metrics = newMetrics(opts.Version, s.gauges)
	if s.notifier != nil {
		s.notifier.failed = s.metrics.notifyFailed
	}
	s.runsCtx, s.stopRuns = context.WithCancelCause(context.Background())
	if err := s.recover(); err != nil {
		return nil, err
	}
	switch every := cfg.RepoUpdate.Every; {
	case s.repos != nil:
		s.metrics.repoCommits(s.repos.lock)
		if every > 0 {
			s.startUpdates(every)
		}
	case every > 0:
		s.log.Warn("repo_update.every is set but no repository is pinned (kdiag repo add; kdiag serve --lock): nothing to update")
	}
	return s, nil
}

// Store returns the server's run store.
func (s *Server) Store() *Store { return s.store }

// Handler returns the server's HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /alerts", s.handleAlerts)
	mux.HandleFunc("POST /repos/update", s.handleRepoUpdate)
	mux.HandleFunc("GET /runs", s.reader(s.handleRuns))
	mux.HandleFunc("GET /runs/{id}", s.reader(s.handleRun))
	mux.HandleFunc("GET /runs/{id}/transcript", s.reader(s.handleTranscript))
	mux.HandleFunc("GET /runs/{id}/transcripts.tar", s.reader(s.handleSetTar))
	mux.HandleFunc("GET /runs/{id}/pods/{pod}", s.reader(s.handlePod))
	mux.HandleFunc("GET /runs/{id}/pods/{pod}/transcript", s.reader(s.handlePodTranscript))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /metrics", s.handleMetrics)
	mux.HandleFunc("GET /{$}", s.reader(s.handleIndex))
	return mux
}

// Serve serves the API on ln until ctx is done, then shuts down: it stops
// accepting connections, lets requests in progress finish, cancels the
// running and queued runs (their transcripts end with status cancelled)
// and waits for them to be stored.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs, ln := s.httpServer(ln)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.Close()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "cause", context.Cause(ctx))
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	s.Close()
	return err
}

// Close refuses new runs, cancels the running and queued ones and waits
// until they are stored.
func (s *Server) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stopRuns(ErrShutdown)
	s.wg.Wait()
}

// recover loads the stored runs: the dedupe window survives restarts, and
// runs left queued or running by a killed server are marked interrupted.
func (s *Server) recover() error {
	metas, bad, err := s.store.list()
	if err != nil {
		return err
	}
	for _, err := range bad {
		s.log.Error("damaged run skipped", "err", err)
	}
	for _, m := range metas {
		t, terr := transcript.ReadFile(s.store.TranscriptPath(m.ID))
		damaged := terr != nil && !errors.Is(terr, transcript.ErrTruncated) && !errors.Is(terr, fs.ErrNotExist)
		if damaged && m.Damaged == "" {
			m.Damaged = terr.Error()
			s.log.Error("damaged run", "run", m.ID, "err", terr)
		}
		if m.Status == StatusQueued && t == nil {
			if req, err := s.resumable(m); err == nil {
				s.log.Info("resuming a run queued before a restart", "run", m.ID, "route", m.Route)
				s.enqueue(m, req)
				s.lastRun[m.Alert.Fingerprint] = m.ID
				continue
			} else if err != nil {
				s.log.Warn("queued run not resumed", "run", m.ID, "err", err)
			}
		}
		changed := damaged
		if !m.Done() {
			changed = true
			s.store.DropRequest(m.ID)
			now := s.now().UTC()
			m.Status, m.Message, m.Ended = StatusInterrupted, "the server stopped during this run", &now
			if m.Set != nil {
				for i, o := range m.Set.Pods {
					if o.Status == podPending || o.Status == podRunning {
						m.Set.Pods[i].Status, m.Set.Pods[i].Error = StatusInterrupted, "the server stopped during this pod's run"
					}
				}
			}
			if t != nil {
				s.store.WriteReports(m.ID, t)
			}
		}
		if changed {
			if err := s.store.Save(m); err != nil {
				return err
			}
		}
		s.runs[m.ID] = m
		s.lastRun[m.Alert.Fingerprint] = m.ID
		if m.Set != nil && m.Set.Selector != "" && m.Status != StatusDuplicate {
			s.setKeys[setKey(m.Route, m.Set.Target.Namespace, m.Set.Selector)] = m.ID
		}
	}
	return nil
}

// resumable returns the request of a run that was queued when the server
// stopped: its route must still exist; the route's current runbook,
// policy and timeout apply.
func (s *Server) resumable(m *Meta) (RunRequest, error) {
	j, err := s.store.LoadRequest(m.ID)
	if err != nil {
		return RunRequest{}, err
	}
	for _, rt := range s.routes {
		if rt.name == m.Route {
			req := s.request(rt, m.ID, j.Params, m.Alert)
			req.Labels = j.Labels
			if rt.fanout != nil && j.Set == nil || rt.fanout == nil && j.Set != nil {
				return RunRequest{}, fmt.Errorf("route %q changed between fan-out and single runs", m.Route)
			}
			req.set = j.Set
			m.Runbook, m.RunbookName, m.Policy = rt.module, rt.runbook.Name, rt.policy
			return req, nil
		}
	}
	return RunRequest{}, fmt.Errorf("route %q is no longer in the config", m.Route)
}
