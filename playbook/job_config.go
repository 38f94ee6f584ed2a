package playbook

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Defaults of the Job executor's settings.
const (
	DefaultJobNamespace        = "kdiag-system"
	DefaultJobServiceAccount   = "kdiag-runner"
	DefaultJobTTLAfterFinished = time.Hour
	DefaultJobTerminationGrace = 15 * time.Second
	// DefaultJobStartAllowance is added to a route's timeout to make the
	// Job's deadline: time to schedule the pod and start the container.
	DefaultJobStartAllowance = 2 * time.Minute
	// DefaultRuntimeEndpoint is the CRI socket node_local mounts when
	// runtime_endpoint is not set.
	DefaultRuntimeEndpoint = "unix:///run/containerd/containerd.sock"
)

// JobConfig is the job: section, the settings of the Job executor
// (executor: job), which runs each run as a Kubernetes Job running
// `kdiag run` and reads the transcript back from the pod's log.
type JobConfig struct {
	// Namespace is where the Jobs are created (default kdiag-system).
	Namespace string `yaml:"namespace"`
	// Image holds kdiag as its entrypoint (default: the server's own
	// release image, ghcr.io/kdiag/kdiag:<its version>, which kdiag serve
	// sets with SetDefaultImage); it should be the server's own image, so
	// that the built-in runbook library is the same.
	Image string `yaml:"image"`
	// ImagePullPolicy is the container's pull policy (default IfNotPresent).
	ImagePullPolicy string `yaml:"image_pull_policy"`
	// ServiceAccountName is the identity runs act as (default kdiag-runner):
	// it needs what the routes' runbooks need, not the server.
	ServiceAccountName string `yaml:"service_account_name"`
	// HostNetwork runs the pod in the node's network namespace, for
	// clusters whose API server listens only on the node's loopback
	// (then set env KUBERNETES_SERVICE_HOST=127.0.0.1 and the port).
	HostNetwork bool `yaml:"host_network"`
	// Env is added to the container's environment.
	Env map[string]string `yaml:"env"`
	// NodeMode is kdiag's --node-mode in the pod: agent (the default: node
	// built-ins run in a node agent pod on the target's node, created by
	// the run), local or auto. auto decides by the pod's host name, which
	// a host_network pod shares with its node: keep agent there.
	NodeMode string `yaml:"node_mode"`
	// AgentImage is the node agent pods' image (default: image).
	AgentImage string `yaml:"agent_image"`
	// AgentNamespace is where agent pods are created (default: the
	// target pod's namespace).
	AgentNamespace string `yaml:"agent_namespace"`
	// NodeLocal makes the pod run node built-ins itself (--node-mode=local):
	// root, privileged, the host's PID namespace and the CRI socket. It
	// only reaches containers on the node the pod runs on (pin it with
	// node_selector): for single-node clusters, or where agent pods are
	// not wanted.
	NodeLocal bool `yaml:"node_local"`
	// RuntimeEndpoint is the node's CRI socket, passed as
	// --runtime-endpoint; node_local mounts it (default there
	// unix:///run/containerd/containerd.sock).
	RuntimeEndpoint string `yaml:"runtime_endpoint"`
	// NodeSelector constrains the nodes the pod may run on.
	NodeSelector map[string]string `yaml:"node_selector"`
	// ActiveDeadline bounds the Job (default: the route's timeout plus 2m
	// to start the pod).
	ActiveDeadline time.Duration `yaml:"active_deadline"`
	// TTLAfterFinished deletes a finished Job the server could not delete
	// itself (default 1h).
	TTLAfterFinished time.Duration `yaml:"ttl_after_finished"`
	// TerminationGrace is how long a cancelled run has to end its
	// transcript and run its cleanups (default 15s).
	TerminationGrace time.Duration `yaml:"termination_grace"`
}

// checkExecutor checks executor: and the job: section, filling the job
// defaults when the executor is job.
func (c *Config) checkExecutor() error {
	switch c.Executor {
	case "local":
		if c.Job != nil {
			return c.errorf(p("job"), "job: these settings are for executor: job, but the executor is local")
		}
		return nil
	case "job":
	default:
		return c.errorf(p("executor"), "executor: unknown %q (want local or job)", c.Executor)
	}
	if c.Job == nil {
		c.Job = &JobConfig{}
	}
	j := c.Job
	defaultString(&j.Namespace, DefaultJobNamespace)
	defaultString(&j.ImagePullPolicy, "IfNotPresent")
	defaultString(&j.ServiceAccountName, DefaultJobServiceAccount)
	defaultString(&j.AgentImage, j.Image)
	if j.NodeLocal {
		defaultString(&j.RuntimeEndpoint, DefaultRuntimeEndpoint)
		defaultString(&j.NodeMode, "local")
	}
	defaultString(&j.NodeMode, "agent")
	if j.TTLAfterFinished == 0 {
		j.TTLAfterFinished = DefaultJobTTLAfterFinished
	}
	if j.TerminationGrace == 0 {
		j.TerminationGrace = DefaultJobTerminationGrace
	}
	if errs := validation.IsDNS1123Label(j.Namespace); len(errs) > 0 {
		return c.errorf(p("job", "namespace"), "job.namespace %q: %s", j.Namespace, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(j.ServiceAccountName); len(errs) > 0 {
		return c.errorf(p("job", "service_account_name"), "job.service_account_name %q: %s", j.ServiceAccountName, strings.Join(errs, "; "))
	}
	switch j.ImagePullPolicy {
	case "Always", "IfNotPresent", "Never":
	default:
		return c.errorf(p("job", "image_pull_policy"), "job.image_pull_policy: unknown %q (want Always, IfNotPresent or Never)", j.ImagePullPolicy)
	}
	switch j.NodeMode {
	case "local", "agent", "auto":
	default:
		return c.errorf(p("job", "node_mode"), "job.node_mode: unknown %q (want local, agent or auto)", j.NodeMode)
	}
	if j.NodeLocal && j.NodeMode != "local" {
		return c.errorf(p("job", "node_local"), "job.node_local runs node built-ins in the Job's pod, node_mode: %s elsewhere: choose one", j.NodeMode)
	}
	if j.RuntimeEndpoint != "" && !strings.HasPrefix(j.RuntimeEndpoint, "unix:///") {
		return c.errorf(p("job", "runtime_endpoint"), "job.runtime_endpoint %q: want a unix:///path socket", j.RuntimeEndpoint)
	}
	for k := range j.Env {
		if errs := validation.IsEnvVarName(k); len(errs) > 0 {
			return c.errorf(p("job", "env", k), "job.env: %q is not a variable name: %s", k, strings.Join(errs, "; "))
		}
	}
	for _, d := range []struct {
		field string
		v     time.Duration
	}{{"active_deadline", j.ActiveDeadline}, {"ttl_after_finished", j.TTLAfterFinished}, {"termination_grace", j.TerminationGrace}} {
		if d.v < 0 || d.v%time.Second != 0 {
			return c.errorf(p("job", d.field), "job.%s must be a positive number of whole seconds, got %s", d.field, d.v)
		}
	}
	return nil
}

func defaultString(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

// SetDefaultImage makes ref the Job's image, and the agent pods', where
// the config names none: kdiag serve passes its own release image.
func (j *JobConfig) SetDefaultImage(ref string) {
	defaultString(&j.Image, ref)
	defaultString(&j.AgentImage, j.Image)
}
