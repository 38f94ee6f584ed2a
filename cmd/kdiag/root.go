package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/runbooks"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/tools/clientcmd"
)

// globalFlags are the flags every command shares: where the cluster is and
// where runbooks come from.
type globalFlags struct {
	kubeconfig      string
	context         string
	namespace       string
	runtimeEndpoint string
	repos           []string
	lock            string
	nodeMode        nodeModeFlag
	agentImage      string
	agentNamespace  string
	color           colorFlag
	overrides       clientcmd.ConfigOverrides

	repoMap map[string]string
	origins map[string]engine.Origin
}

func (g *globalFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&g.kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
	fs.StringVar(&g.context, "context", "", "the kubeconfig context to use")
	fs.StringVarP(&g.namespace, "namespace", "n", "", "the namespace (default: the context's)")
	fs.StringVar(&g.runtimeEndpoint, "runtime-endpoint", "", "the CRI socket (default: $CONTAINER_RUNTIME_ENDPOINT, /etc/crictl.yaml, autodetect)")
	fs.Var(&g.nodeMode, "node-mode", "where node built-ins run: local, agent (an agent pod on the pod's node) or auto (local on the pod's node, else agent)")
	fs.StringVar(&g.agentImage, "agent-image", "", "the node agent pod's image, an image of this kdiag with it at /kdiag (default: $KDIAG_AGENT_IMAGE, "+agent.Image(version)+")")
	fs.StringVar(&g.agentNamespace, "agent-namespace", "", "where node agent pods are created (default: the target pod's namespace)")
	// kubectl's connection flags (--as, --as-group, --user, --cluster,
	// --token, --server, --request-timeout, ...); --context and -n are
	// kdiag's own above.
	names := clientcmd.RecommendedConfigOverrideFlags("")
	names.CurrentContext.LongName = ""
	names.ContextOverrideFlags.Namespace.LongName = ""
	clientcmd.BindOverrideFlags(&g.overrides, fs, names)
	fs.Var(&g.color, "color", "colour the report's severities and outcomes: auto (on a terminal, unless $NO_COLOR is set), always or never")
	fs.StringArrayVar(&g.repos, "repo", nil, "a runbook repository directory, NAME=DIR or DIR (repeatable; also $KDIAG_REPOS, colon-separated)")
	fs.StringVar(&g.lock, "lock", "", "the lock file of pinned repositories (default: ./kdiag.lock if present, else ~/.config/kdiag/kdiag.lock; also $KDIAG_LOCK)")
}

// config returns the built-ins' configuration.
func (g *globalFlags) config() builtins.Config {
	return withEnv(builtins.Config{Kubeconfig: g.kubeconfig, Context: g.context, Namespace: g.namespace, RuntimeEndpoint: g.runtimeEndpoint,
		NodeMode: string(g.nodeMode.mode()), AgentImage: g.agentImage, AgentNamespace: g.agentNamespace, Overrides: &g.overrides})
}

// checkConnectionFlags checks what clientcmd would only check on the
// first call to the cluster.
func (g *globalFlags) checkConnectionFlags() error {
	if t := g.overrides.Timeout; t != "" && t != "0" {
		if _, err := time.ParseDuration(t); err != nil {
			if _, err := strconv.Atoi(t); err != nil {
				return usageErrorf("--request-timeout %s: want a duration like 30s, 2m or 0 (no timeout)", t)
			}
		}
	}
	return nil
}

// repoDirs returns the configured repositories by name (resolved by
// resolveRepos before any command runs).
func (g *globalFlags) repoDirs() map[string]string {
	if g.repoMap == nil {
		g.resolveRepos()
	}
	return g.repoMap
}

// resolveRepos reads --repo and KDIAG_REPOS: NAME=DIR or DIR, whose name is
// its kdiag.yaml's name, else the directory's base name. It checks each
// manifest's required kdiag version.
func (g *globalFlags) resolveRepos() error {
	g.repoMap = map[string]string{}
	all := append(append([]string{}, g.repos...), envRepoList()...)
	for _, r := range all {
		if r == "" {
			continue
		}
		name, dir, named := strings.Cut(r, "=")
		if !named {
			dir, name = r, filepath.Base(filepath.Clean(r))
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return usageErrorf("--repo %s: %s is not a directory", r, dir)
		}
		m, err := engine.ReadManifest(dir)
		if err != nil {
			return usageErrorf("--repo %s: %v", r, err)
		}
		if m != nil && m.Name != "" && !named {
			name = m.Name
		}
		if err := m.CheckVersion(filepath.Join(dir, engine.RepoManifest), version); err != nil {
			return usageErrorf("--repo %s: %v", r, err)
		}
		if _, dup := g.repoMap[name]; !dup {
			g.repoMap[name] = dir
		}
	}
	// The pinned repositories (kdiag repo add); --repo wins on a name.
	dirs, origins, err := g.pinnedRepos(context.Background())
	if err != nil {
		return usageErrorf("%v", err)
	}
	for name, dir := range dirs {
		if _, dup := g.repoMap[name]; dup {
			continue
		}
		m, err := engine.ReadManifest(dir)
		if err != nil {
			return usageErrorf("repository %s: %v", name, err)
		}
		if err := m.CheckVersion(filepath.Join(dir, engine.RepoManifest), version); err != nil {
			return usageErrorf("repository %s: %v", name, err)
		}
		g.repoMap[name] = dir
		if g.origins == nil {
			g.origins = map[string]engine.Origin{}
		}
		g.origins[name] = origins[name]
	}
	return nil
}

// loader returns a loader over the built-in library and the repositories.
func (g *globalFlags) loader() *engine.Loader {
	return &engine.Loader{Builtin: runbooks.FS, Repos: g.repoDirs(), Origins: g.origins}
}

func newRootCmd(ctx context.Context) *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "kdiag",
		Short:         "Scripted, recorded, replayable diagnosis runbooks for Kubernetes",
		Long:          "kdiag runs Starlark runbooks that diagnose (and, when allowed, fix) Kubernetes pods.\nEvery built-in call is recorded to a transcript that replays without a cluster.",
		SilenceErrors: true,
		SilenceUsage:  true,
		Args:          cobra.ArbitraryArgs,
		// kdiag alone prints help; an unknown command is a usage error.
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return cmd.Help()
			}
			msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
			cmd.SuggestionsMinimumDistance = 2
			if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
				msg += "; did you mean " + orList(s) + "?"
			}
			return usageErrorf("%s (see %s --help)", msg, cmd.CommandPath())
		},
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageErrorf("%v (see %s --help)", err, c.CommandPath())
	})
	g.addFlags(root.PersistentFlags())
	root.PersistentPreRunE = func(cmd *cobra.Command, args []string) error {
		if err := g.checkConnectionFlags(); err != nil {
			return err
		}
		return g.resolveRepos()
	}
	root.AddCommand(
		newRunCmd(g),
		newRepoCmd(g),
		newReplayCmd(g),
		newReportCmd(g),
		newListCmd(g),
		newDescribeCmd(g),
		newBuiltinsCmd(g),
		newUndoCmd(g),
		newTestCmd(g),
		newLintCmd(g),
		newServeCmd(g),
		newVersionCmd(),
		newAgentCmd(),
	)
	registerCompletions(root, g)
	if name := displayName(os.Args[0]); name != "kdiag" {
		asPlugin(root, name)
	}
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageErrorf("%s takes %s (got %d arguments); see %s --help", cmd.CommandPath(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}
