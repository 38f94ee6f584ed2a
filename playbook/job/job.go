// Package job holds the playbook server's Job executor (executor: job):
// it runs each run as a Kubernetes Job running `kdiag run
// --stream-transcript`, follows the Job and its pod, and reassembles the
// transcript from the pod's log.
package job

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kdiag/kdiag/playbook"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// RunLabel labels a run's Job and pod with the run's id.
const RunLabel = "kdiag.io/run"

// Executor is the playbook.Executor that runs each run as a Kubernetes Job: its
// pod runs `kdiag run` with the run's runbook, params, labels and policy
// and streams the transcript to its log (--stream-transcript), which the
// executor follows and writes to the run's TranscriptPath. Cancelling a
// run deletes its Job: the pod is terminated, and kdiag ends the
// transcript with status cancelled and runs its cleanups. A finished
// Job is deleted once its transcript is read.
type Executor struct {
	// Config are the job: settings, defaults filled (playbook.Load does).
	Config playbook.JobConfig
	// Client creates, watches and deletes the Jobs and reads pod logs.
	Client kubernetes.Interface
	// DedupeWindow is how long after a run ends that the same alert
	// episode given to another replica is still a duplicate (the
	// server's dedupe_window).
	DedupeWindow time.Duration
	// Poll is how often the follower looks for why a Job has no pod yet
	// (its FailedCreate events, which no informer reports; default
	// 500ms). The Job and its pod are watched, not polled.
	Poll time.Duration
	// BundleGrace is how long a bundle ConfigMap no Job uses is kept
	// after a run last chose it (default DefaultBundleGrace).
	BundleGrace time.Duration
}

// New returns an Executor with the config's job: settings.
func New(cfg *playbook.Config, client kubernetes.Interface) *Executor {
	j := &Executor{Client: client, Poll: defaultPoll, DedupeWindow: cfg.DedupeWindow}
	if cfg.Job != nil {
		j.Config = *cfg.Job
	}
	return j
}

// Name implements playbook.Executor.
func (j *Executor) Name() string { return "job" }

// Start implements playbook.Executor: it creates the run's frame key
// Secret and Job, and follows the Job.
func (j *Executor) Start(ctx context.Context, req playbook.RunRequest) (playbook.RunHandle, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, fmt.Errorf("frame key: %w", err)
	}
	job := j.job(req)
	sec := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: frameKeySecret(req.ID), Namespace: job.Namespace, Labels: job.Labels},
		Data:       map[string][]byte{frameKeyFile: key},
	}
	// Another replica of the server may have been given the same alert.
	release, err := j.claim(ctx, req, job.Namespace)
	if err != nil {
		return nil, err
	}
	if req.Bundle != nil {
		if err := j.ensureBundle(ctx, job.Namespace, req.Bundle); err != nil {
			release(false)
			return nil, err
		}
	}
	created, err := j.Client.BatchV1().Jobs(job.Namespace).Create(ctx, job, metav1.CreateOptions{})
	if err != nil {
		release(false)
		return nil, fmt.Errorf("create job %s/%s: %w", job.Namespace, job.Name, err)
	}
	if _, err := j.Client.CoreV1().Secrets(sec.Namespace).Create(ctx, sec, metav1.CreateOptions{}); err != nil {
		j.deleteJob(created)
		release(false)
		return nil, fmt.Errorf("create the run's frame key secret %s/%s: %w", sec.Namespace, sec.Name, err)
	}
	// Owned by the Job, the Secret goes with it even if the server dies
	// before it deletes the Secret itself.
	owner := fmt.Sprintf(`{"metadata":{"ownerReferences":[{"apiVersion":"batch/v1","kind":"Job","name":%q,"uid":%q}]}}`, created.Name, created.UID)
	_, _ = j.Client.CoreV1().Secrets(sec.Namespace).Patch(ctx, sec.Name, types.MergePatchType, []byte(owner), metav1.PatchOptions{})
	h := &handle{done: make(chan struct{})}
	go func() {
		defer close(h.done)
		h.out = j.follow(ctx, created, req, key)
		release(true)
		if req.Bundle != nil {
			bg, cancel := context.WithTimeout(context.Background(), apiTimeout)
			j.CollectBundles(bg)
			cancel()
		}
	}()
	return h, nil
}

// handle is a started Job run.
type handle struct {
	done chan struct{}
	out  playbook.Outcome
}

// Wait implements playbook.RunHandle.
func (h *handle) Wait() playbook.Outcome {
	<-h.done
	return h.out
}

// The run's frame key: a Secret of its own, mounted into the kdiag
// container only, read by kdiag at start-up (--frame-key-file). Runs'
// identity (kdiag-runner) cannot read Secrets through the API.
const (
	frameKeyFile = "key"
	frameKeyDir  = "/var/run/kdiag/frame-key"
)

func frameKeySecret(id string) string { return jobName(id) + "-key" }

// jobName names a run's Job: the run id, lowercased.
func jobName(id string) string { return "kdiag-run-" + strings.ToLower(id) }

// Args returns the kdiag arguments that run req: the runbook (from its
// bundle, checked against the bundle's digest, when it has one), its
// params, the labels, the policy as flags, the timeout and the transcript
// stream.
func (j *Executor) Args(req playbook.RunRequest) []string {
	args := []string{"run", req.Runbook}
	if b := req.Bundle; b != nil {
		args = []string{"run", "--bundle=" + bundleDir, "--bundle-digest=" + b.Digest, b.Manifest.Runbook}
	}
	for _, k := range slices.Sorted(maps.Keys(req.Params)) {
		args = append(args, "-p", k+"="+fmt.Sprint(req.Params[k]))
	}
	for _, k := range slices.Sorted(maps.Keys(req.Labels)) {
		args = append(args, "--label", k+"="+req.Labels[k])
	}
	switch req.Policy.Mutations {
	case playbook.MutationsDryRun:
		args = append(args, "--dry-run=client")
	case playbook.MutationsAllow:
		args = append(args, "--allow-builtins="+strings.Join(req.Policy.AllowBuiltins, ","))
	default:
		args = append(args, "--allow-builtins=")
	}
	args = append(args, "--timeout="+req.Timeout.String(), "--stream-transcript", "--frame-key-file="+frameKeyDir+"/"+frameKeyFile, "--no-record")
	c := j.Config
	if c.NodeMode != "" {
		args = append(args, "--node-mode="+c.NodeMode)
	}
	if c.NodeMode != "local" && c.AgentImage != "" {
		args = append(args, "--agent-image="+c.AgentImage)
	}
	if c.NodeMode != "local" && c.AgentNamespace != "" {
		args = append(args, "--agent-namespace="+c.AgentNamespace)
	}
	if c.RuntimeEndpoint != "" {
		args = append(args, "--runtime-endpoint="+c.RuntimeEndpoint)
	}
	return args
}

// job builds the Job of req.
func (j *Executor) job(req playbook.RunRequest) *batchv1.Job {
	c := j.Config
	labels := map[string]string{RunLabel: req.ID, "app.kubernetes.io/name": "kdiag", "app.kubernetes.io/component": "run"}
	if r := req.Labels["route"]; r != "" && len(r) <= 63 {
		labels["kdiag.io/route"] = r
	}
	var env []corev1.EnvVar
	for _, k := range slices.Sorted(maps.Keys(c.Env)) {
		env = append(env, corev1.EnvVar{Name: k, Value: c.Env[k]})
	}
	ctr := corev1.Container{
		Name: "kdiag", Image: c.Image, ImagePullPolicy: corev1.PullPolicy(c.ImagePullPolicy),
		Args: j.Args(req), Env: env,
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{
			corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
		SecurityContext: &corev1.SecurityContext{
			RunAsNonRoot: ptr(true), RunAsUser: ptr(int64(65532)), RunAsGroup: ptr(int64(65532)),
			AllowPrivilegeEscalation: ptr(false), ReadOnlyRootFilesystem: ptr(true),
			Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	spec := corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: c.ServiceAccountName,
		HostNetwork: c.HostNetwork, NodeSelector: c.NodeSelector,
		TerminationGracePeriodSeconds: ptr(int64(c.TerminationGrace / time.Second)),
		SecurityContext:               &corev1.PodSecurityContext{FSGroup: ptr(int64(65532))},
	}
	if c.HostNetwork {
		spec.DNSPolicy = corev1.DNSClusterFirstWithHostNet
	}
	if c.NodeLocal {
		nodeLocal(&spec, &ctr, c.RuntimeEndpoint)
	}
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "frame-key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: frameKeySecret(req.ID), DefaultMode: ptr(int32(0o440))}}})
	ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "frame-key", MountPath: frameKeyDir, ReadOnly: true})
	if req.Bundle != nil {
		mountBundle(&spec, &ctr, labels, req.Bundle)
	}
	spec.Containers = []corev1.Container{ctr}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: jobName(req.ID), Namespace: c.Namespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            ptr(int32(0)),
			TTLSecondsAfterFinished: ptr(int32(c.TTLAfterFinished / time.Second)),
			Template:                corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec},
		},
	}
	deadline := c.ActiveDeadline
	if deadline == 0 && req.Timeout > 0 {
		deadline = req.Timeout + playbook.DefaultJobStartAllowance
	}
	if deadline > 0 {
		job.Spec.ActiveDeadlineSeconds = ptr(int64((deadline + time.Second - 1) / time.Second))
	}
	return job
}

// nodeLocal gives the pod what node built-ins need to run in it: root,
// privileged, the host's PID namespace and the node's CRI socket.
func nodeLocal(spec *corev1.PodSpec, ctr *corev1.Container, endpoint string) {
	socket := strings.TrimPrefix(endpoint, "unix://")
	spec.HostPID = true
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "cri", VolumeSource: corev1.VolumeSource{
		HostPath: &corev1.HostPathVolumeSource{Path: socket, Type: ptr(corev1.HostPathSocket)}}})
	ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "cri", MountPath: socket})
	ctr.SecurityContext = &corev1.SecurityContext{
		Privileged: ptr(true), RunAsUser: ptr(int64(0)), RunAsGroup: ptr(int64(0)), RunAsNonRoot: ptr(false),
		ReadOnlyRootFilesystem: ptr(true),
	}
}

func ptr[T any](v T) *T { return &v }

// exitText describes a container's exit.
func exitText(t *corev1.ContainerStateTerminated) string {
	s := "exit code " + strconv.Itoa(int(t.ExitCode))
	if t.Reason != "" && t.Reason != "Completed" && t.Reason != "Error" {
		s += " (" + t.Reason + ")"
	}
	return s
}
