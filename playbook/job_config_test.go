package playbook

import (
	"strings"
	"testing"
)

// TestJobConfigErrors: bad job settings fail at load, naming the line.
func TestJobConfigErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"executor: jobs\n", `playbooks.yaml:2: executor: unknown "jobs" (want local or job)`},
		{"job: {image: x:v1}\n", "playbooks.yaml:2: job: these settings are for executor: job, but the executor is local"},
		{"executor: job\njob:\n  node_mode: remote\n", `playbooks.yaml:4: job.node_mode: unknown "remote"`},
		{"executor: job\njob:\n  node_mode: agent\n  node_local: true\n", "playbooks.yaml:5: job.node_local runs node built-ins in the Job's pod"},
		{"executor: job\njob:\n  namespace: Diag_Runs\n", `playbooks.yaml:4: job.namespace "Diag_Runs"`},
		{"executor: job\njob:\n  env: {\"1X\": y}\n", `playbooks.yaml:4: job.env: "1X" is not a variable name`},
		{"executor: job\njob:\n  active_deadline: 1500ms\n", "playbooks.yaml:4: job.active_deadline must be a positive number of whole seconds, got 1.5s"},
		{"executor: job\njob:\n  runtime_endpoint: /run/containerd.sock\n", `playbooks.yaml:4: job.runtime_endpoint "/run/containerd.sock": want a unix:///path socket`},
		{"executor: job\njob:\n  hostnetwork: true\n", `playbooks.yaml:4: unknown field "hostnetwork" in job (fields: namespace, image,`},
	} {
		y := "auth: {insecure: true}\n" + tc.yaml + "routes:\n  - {runbook: wait-and-log}\n"
		_, err := Parse("playbooks.yaml", []byte(y))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}
