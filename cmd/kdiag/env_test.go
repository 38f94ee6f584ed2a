package main

import (
	"testing"

	"github.com/kdiag/kdiag/builtins"
)

// TestEnvDefaults: the environment fills what the flags leave empty, and
// a flag wins over it.
func TestEnvDefaults(t *testing.T) {
	t.Setenv(envAgentImage, "agent:v9")
	t.Setenv(envDebugImage, "debug:v9")
	t.Setenv(envNoPreflight, "1")
	cfg := (&globalFlags{}).config()
	if cfg.AgentImage != "agent:v9" || cfg.DebugImage != "debug:v9" || !cfg.SkipPreflight {
		t.Errorf("from the environment: %+v", cfg)
	}
	if got := withEnv(builtins.Config{AgentImage: "flag:v1"}).AgentImage; got != "flag:v1" {
		t.Errorf("--agent-image lost to $%s: %q", envAgentImage, got)
	}
	t.Setenv(envNoPreflight, "")
	t.Setenv(envDebugImage, "")
	if cfg := (&globalFlags{}).config(); cfg.SkipPreflight || cfg.DebugImage != "" {
		t.Errorf("without the environment: %+v", cfg)
	}
}
