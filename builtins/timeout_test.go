package builtins

import (
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

// TestRequestTimeoutReplacesAPIDefaults: --request-timeout becomes the
// default deadline (the timeout argument's default) of the built-ins that
// make plain API requests, and leaves the waits and node built-ins alone.
func TestRequestTimeoutReplacesAPIDefaults(t *testing.T) {
	defaults := func(o *clientcmd.ConfigOverrides) map[string]any {
		m := map[string]any{}
		for _, s := range All(Config{NodeMode: "local", Overrides: o}) {
			for _, p := range s.Params {
				if p.Name == "timeout" {
					m[s.Name] = p.Default
				}
			}
		}
		return m
	}
	plain, set := defaults(&clientcmd.ConfigOverrides{}), defaults(&clientcmd.ConfigOverrides{Timeout: "45s"})
	for name, want := range map[string][2]any{
		"get_pod": {"15s", "45s"}, "list": {"15s", "45s"}, "logs": {"30s", "45s"}, "patch_configmap": {"30s", "45s"},
		"wait_ready": {"2m", "2m"}, "find_pid": {"30s", "30s"}, "read_file": {"10s", "10s"},
	} {
		if plain[name] != want[0] || set[name] != want[1] {
			t.Errorf("%s: timeout default %v, with --request-timeout 45s %v; want %v, %v", name, plain[name], set[name], want[0], want[1])
		}
	}
}
