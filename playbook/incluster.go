package playbook

import "os"

// serviceAccountToken is where Kubernetes mounts a pod's token.
var serviceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"

// DefaultExecutor is the executor of a config that names none: "job"
// when kdiag serve runs in a Kubernetes pod (so that runs are isolated
// and scale with the cluster), "local" elsewhere.
func DefaultExecutor() string {
	if os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		if _, err := os.Stat(serviceAccountToken); err == nil {
			return "job"
		}
	}
	return "local"
}
