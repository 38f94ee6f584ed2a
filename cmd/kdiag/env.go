package main

import (
	"os"
	"strings"

	"github.com/kdiag/kdiag/builtins"
	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/kdiag/kdiag/engine/repos"
)

// The environment variables kdiag reads for its defaults, all read here:
// library packages take the values as options.
const (
	envRepos       = "KDIAG_REPOS"                // colon-separated --repo values
	envAgentImage  = "KDIAG_AGENT_IMAGE"          // --agent-image's default
	envDebugImage  = "KDIAG_DEBUG_IMAGE"          // attach_ephemeral's default image
	envNoPreflight = "KDIAG_NO_PREFLIGHT"         // "1" skips the RBAC preflight
	envNoColor     = "NO_COLOR"                   // set: no colour on a terminal
	envLock        = "KDIAG_LOCK"                 // --lock's default
	envConfigDir   = "KDIAG_CONFIG_DIR"           // where the user's kdiag.lock is
	envCacheDir    = "KDIAG_CACHE_DIR"            // where pinned repositories are cached
	envRuntime     = "CONTAINER_RUNTIME_ENDPOINT" // the CRI socket, below --runtime-endpoint (as crictl)
)

// envRepoPaths returns the lock file and the repository cache: --lock or
// $KDIAG_LOCK, else repos.DefaultLockPath in $KDIAG_CONFIG_DIR; the cache
// in $KDIAG_CACHE_DIR, else repos.DefaultCacheDir.
func envRepoPaths(flagLock string) (lock, cache string) {
	lock = flagLock
	if lock == "" {
		lock = os.Getenv(envLock)
	}
	if lock == "" {
		lock = repos.DefaultLockPath(os.Getenv(envConfigDir))
	}
	cache = os.Getenv(envCacheDir)
	if cache == "" {
		cache = repos.DefaultCacheDir()
	}
	return lock, cache
}

// withEnv returns cfg with its defaults from the environment filled where
// the flags left them empty.
func withEnv(cfg builtins.Config) builtins.Config {
	if cfg.AgentImage == "" {
		cfg.AgentImage = os.Getenv(envAgentImage)
	}
	if cfg.AgentImage == "" {
		cfg.AgentImage = agent.Image(version)
	}
	if cfg.DebugImage == "" {
		cfg.DebugImage = os.Getenv(envDebugImage)
	}
	if cfg.EnvRuntimeEndpoint == "" {
		cfg.EnvRuntimeEndpoint = os.Getenv(envRuntime)
	}
	cfg.SkipPreflight = cfg.SkipPreflight || os.Getenv(envNoPreflight) == "1"
	return cfg
}

// envRepoList returns the repositories $KDIAG_REPOS names.
func envRepoList() []string {
	if env := os.Getenv(envRepos); env != "" {
		return strings.Split(env, ":")
	}
	return nil
}

// envNoColour says whether the environment asks for no colour.
func envNoColour() bool {
	return os.Getenv(envNoColor) != "" || os.Getenv("TERM") == "dumb"
}
