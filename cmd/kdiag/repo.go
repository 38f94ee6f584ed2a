package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/kdiag/kdiag/engine"
	"github.com/kdiag/kdiag/engine/repos"
	"github.com/spf13/cobra"
)

// repoOptions are the options of kdiag repo's subcommands.
type repoOptions struct {
	g    *globalFlags
	lock *repos.Lock
	ref  string
}

func newRepoCmd(g *globalFlags) *cobra.Command {
	o := &repoOptions{g: g}
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Pin runbook repositories from git: add, list, update, remove",
		Long: `kdiag repo pins shared runbook repositories: each is fetched with git into a cache,
resolved to a commit, and recorded with the digest of its files in a lock file —
./kdiag.lock when it exists (a project's, to commit next to its playbooks), else the
user's (~/.config/kdiag/kdiag.lock), or --lock FILE. Runs use the pinned commit until
kdiag repo update, offline from the cache; a moved tag or a changed digest is an error.
Runbooks of a pinned repository are found by name, and load from it as @NAME//path.`,
		// The lock is what these commands manage: it is not resolved first.
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			l, err := repos.ReadLock(g.lockPath())
			o.lock = l
			return err
		},
	}
	add := &cobra.Command{
		Use:   "add NAME URL",
		Short: "Fetch a repository and pin it (file://, https:// or ssh URL; --ref a tag, branch or commit)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := repos.Add(cmd.Context(), o.lock, o.cache(), args[0], args[1], o.ref)
			if err != nil {
				return err
			}
			if err := o.lock.Write(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: %s pinned to %s (%s) in %s\n", e.Name, display(e.URL), e.Commit, e.Digest[:19], o.lock.Path)
			return nil
		},
	}
	add.Flags().StringVar(&o.ref, "ref", "", "a tag, a branch or a commit (default: the remote's default branch)")
	list := &cobra.Command{
		Use:   "list",
		Short: "List the pinned repositories",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tURL\tREF\tCOMMIT\tDIGEST")
			for _, e := range o.lock.Repos {
				ref := e.Ref
				if ref == "" {
					ref = "(default branch)"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s %s\t%s\t%s\n", e.Name, display(e.URL), e.RefKind, ref, e.Commit[:12], e.Digest[:19])
			}
			return tw.Flush()
		},
	}
	update := &cobra.Command{
		Use:   "update [NAME...]",
		Short: "Fetch repositories again and move branch pins to their new commit (a moved tag is refused)",
		RunE: func(cmd *cobra.Command, args []string) error {
			lines, err := repos.Update(cmd.Context(), o.lock, o.cache(), args)
			for _, l := range lines {
				fmt.Fprintln(cmd.OutOrStdout(), l)
			}
			if err != nil {
				return err
			}
			return o.lock.Write()
		},
	}
	remove := &cobra.Command{
		Use:   "remove NAME",
		Short: "Forget a pinned repository (its cached files stay until the cache is cleaned)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := repos.Remove(o.lock, args[0]); err != nil {
				return err
			}
			return o.lock.Write()
		},
	}
	cmd.AddCommand(add, list, update, remove)
	return cmd
}

func (o *repoOptions) cache() *repos.Cache {
	_, cache := envRepoPaths(o.g.lock)
	return &repos.Cache{Dir: cache}
}

// lockPath is --lock, else $KDIAG_LOCK, else repos.DefaultLockPath.
func (g *globalFlags) lockPath() string {
	lock, _ := envRepoPaths(g.lock)
	return lock
}

// pinnedRepos reads the lock and returns the pinned repositories' trees
// and origins (checked against their digests, from the cache).
func (g *globalFlags) pinnedRepos(ctx context.Context) (map[string]string, map[string]engine.Origin, error) {
	l, err := repos.ReadLock(g.lockPath())
	if err != nil || len(l.Repos) == 0 {
		return nil, nil, err
	}
	_, cache := envRepoPaths(g.lock)
	dirs, err := repos.Dirs(ctx, l, &repos.Cache{Dir: cache})
	if err != nil {
		return nil, nil, err
	}
	origins := map[string]engine.Origin{}
	for _, e := range l.Repos {
		origins[e.Name] = engine.Origin{URL: display(e.URL), Commit: e.Commit}
	}
	return dirs, origins, nil
}

// display is repos.Display.
func display(raw string) string { return repos.Display(raw) }
