package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/kdiag/kdiag/builtins/agent"
	"github.com/spf13/cobra"
)

// TestServeDefaultJobImage: with no job.image, the Job executor runs
// kdiag's own release image of the server's version, and the agent pods
// too; a configured image is kept.
func TestServeDefaultJobImage(t *testing.T) {
	for _, tc := range []struct{ job, image, agentImage string }{
		{"", agent.Image(version), agent.Image(version)},
		{"job: {image: reg.example/kdiag:v2}\n", "reg.example/kdiag:v2", "reg.example/kdiag:v2"},
		{"job: {agent_image: reg.example/agent:v3}\n", agent.Image(version), "reg.example/agent:v3"},
	} {
		path := filepath.Join(t.TempDir(), "playbooks.yaml")
		os.WriteFile(path, []byte("auth: {insecure: true}\nexecutor: job\n"+tc.job+"routes:\n  - {runbook: wait-and-log}\n"), 0o644)
		o := &serveOptions{config: path, logFormat: "text"}
		if err := o.complete(&cobra.Command{}); err != nil {
			t.Fatalf("%q: %v", tc.job, err)
		}
		if o.cfg.Job.Image != tc.image || o.cfg.Job.AgentImage != tc.agentImage {
			t.Errorf("%q: image %q agent image %q, want %q %q", tc.job, o.cfg.Job.Image, o.cfg.Job.AgentImage, tc.image, tc.agentImage)
		}
	}
}
