package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/repos"
	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	"github.com/kdiag/kdiag/playbook/job"
	"github.com/spf13/cobra"
)

// defaultServeStore is where runs are kept when neither --store nor the
// config's store: says.
const defaultServeStore = ".kdiag/serve"

// serveOptions are the options of kdiag serve.
type serveOptions struct {
	g        *globalFlags
	config   string
	listen   string
	store    string
	executor string

	cfg       *playbook.Config
	errOut    io.Writer
	logFormat string
}

func newServeCmd(g *globalFlags) *cobra.Command {
	o := &serveOptions{g: g}
	cmd := &cobra.Command{
		Use:   "serve --config playbooks.yaml [--listen :8080] [--store DIR]",
		Short: "Run runbooks when alerts fire: an Alertmanager webhook receiver",
		Long: `kdiag serve receives Alertmanager webhooks at POST /alerts, routes each firing
alert to a runbook with params taken from its labels and annotations, runs it under
the route's mutation policy, and keeps every run's transcript and reports, served at
GET /runs. SIGTERM stops accepting alerts and cancels the runs in progress; their
transcripts end with status cancelled. See docs/playbooks.md.`,
		Example: `  kdiag serve --config playbooks.yaml
  kdiag serve --config /etc/kdiag/playbooks.yaml --listen :8080 --store /var/lib/kdiag`,
		Args: exactArgs(0, "no arguments (the config is --config)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.complete(cmd); err != nil {
				return err
			}
			return o.run(cmd.Context())
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.config, "config", "", "the playbooks.yaml file (required)")
	fs.StringVar(&o.executor, "executor", "", "local (in-process) or job (a Kubernetes Job per run); default: the config's executor:, else job in a pod and local elsewhere")
	fs.StringVar(&o.listen, "listen", "", "the address to serve on (default: the config's listen:, else :8080)")
	fs.StringVar(&o.logFormat, "log-format", "text", "the log's format on stderr: text or json (one JSON object a line, for log collectors)")
	cmd.RegisterFlagCompletionFunc("log-format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	fs.StringVar(&o.store, "store", "", "the directory runs are kept in (default: the config's store:, else "+defaultServeStore+")")
	return cmd
}

func (o *serveOptions) complete(cmd *cobra.Command) error {
	o.errOut = cmd.ErrOrStderr()
	if o.logFormat != "text" && o.logFormat != "json" {
		return usageErrorf("--log-format %s: want text or json", o.logFormat)
	}
	if o.config == "" {
		return usageErrorf("serve needs --config playbooks.yaml (see docs/playbooks.md)")
	}
	cfg, err := playbook.Load(o.config)
	if err != nil {
		return &engine.UsageError{Err: err}
	}
	o.cfg = cfg
	if cfg.Job == nil {
		cfg.Job = &playbook.JobConfig{}
	}
	cfg.Job.SetDefaultImage(agent.Image(version))
	switch o.executor {
	case "":
	case "local", "job":
		cfg.Executor = o.executor
	default:
		return usageErrorf("--executor=%s: want local or job", o.executor)
	}
	if o.listen == "" {
		o.listen = cfg.Listen
	}
	if o.store == "" {
		o.store = cfg.Abs(cfg.Store)
	}
	if o.store == "" {
		o.store = defaultServeStore
	}
	return nil
}

func (o *serveOptions) run(ctx context.Context) error {
	bcfg := o.g.config()
	specs := builtins.All(bcfg)
	opts := playbook.Options{
		Specs: specs, StoreDir: o.store, Version: version,
		Logger: o.logger(), Pods: playbook.KubePods{Clients: bcfg.Clients()},
	}
	loader, err := o.repos(&opts)
	if err != nil {
		return err
	}
	var jobs *job.Executor
	switch o.cfg.Executor {
	case "job":
		jobs = job.New(o.cfg, nil) // its client once the config checks out
		opts.Executor = jobs
	case "local":
		opts.Executor = &playbook.Local{
			Specs: specs, Loader: loader, Version: version, MaxSteps: engine.DefaultMaxSteps, MaxHeapBytes: 384 << 20,
			Target: transcript.Target{Kubeconfig: bcfg.Kubeconfig, Context: bcfg.Context, Namespace: bcfg.Namespace},
			Preflight: func(ctx context.Context, rb *engine.Runbook, params map[string]any, mayWrite func(string) bool) error {
				return builtins.Preflight(ctx, bcfg, rb, params, mayWrite)
			},
		}
	}
	srv, err := playbook.New(o.cfg, opts)
	if err != nil {
		return &engine.UsageError{Err: err}
	}
	if jobs != nil {
		if jobs.Client, _, err = bcfg.Clients().Kube(); err != nil {
			srv.Close()
			return fmt.Errorf("serve: executor job: %w", err)
		}
		if gone, err := jobs.CollectBundles(ctx); err != nil {
			o.logger().Warn("bundle collection", "err", err)
		} else if len(gone) > 0 {
			o.logger().Info("deleted unused bundles", "configmaps", gone)
		}
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		srv.Close()
		return fmt.Errorf("serve: %w", err)
	}
	if o.logFormat == "json" {
		o.logger().Info("kdiag serve: listening on http://"+ln.Addr().String(), "routes", len(o.cfg.Routes), "store", o.store, "version", version)
	} else {
		fmt.Fprintf(o.errOut, "kdiag serve: listening on http://%s (%d routes, store %s)\n", ln.Addr(), len(o.cfg.Routes), o.store)
	}
	return srv.Serve(ctx, ln)
}

// repos sets opts.Loader: the built-in library, --repo and the config's
// repos:, and the pinned repositories of the lock file, which the server
// then keeps up to date (opts.Repos). It returns the loader the local
// executor starts with.
func (o *serveOptions) repos(opts *playbook.Options) (*engine.Loader, error) {
	all := o.g.loader()
	base := &engine.Loader{Builtin: all.Builtin, Repos: map[string]string{}}
	for name, dir := range all.Repos {
		if _, pinned := o.g.origins[name]; !pinned {
			base.Repos[name] = dir
		}
	}
	base = o.cfg.Loader(base)
	opts.Loader = base
	lock, err := repos.ReadLock(o.g.lockPath())
	if err != nil || len(lock.Repos) == 0 {
		return base, err
	}
	_, cache := envRepoPaths(o.g.lock)
	opts.Repos = &playbook.Repos{Lock: lock, Cache: &repos.Cache{Dir: cache}, Base: base, WriteLock: true}
	return o.cfg.Loader(all), nil
}

// logger is the server's log on stderr, as --log-format says.
func (o *serveOptions) logger() *slog.Logger {
	if o.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(o.errOut, nil))
	}
	return slog.New(slog.NewTextHandler(o.errOut, nil))
}
