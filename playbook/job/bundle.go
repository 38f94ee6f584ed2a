package job

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kdiag/kdiag/engine/bundle"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Bundles: the files of a runbook not of the built-in library go to the
// Job in a ConfigMap named by the bundle's digest (bundle.NameOf), made
// once and reused by every run of the same files. The Job carries the
// label BundleLabel naming it; the pod mounts it at bundleDir and kdiag
// verifies it against --bundle-digest before running anything.
const (
	// BundleLabel labels bundle ConfigMaps with their own name, and the
	// Jobs using one with its name.
	BundleLabel = "kdiag.io/bundle"
	// bundleUsed is when a run last chose the bundle (RFC 3339); the
	// collector spares bundles used within the grace period.
	bundleUsed = "kdiag.io/last-used"
	bundleDir  = "/var/run/kdiag/bundle"
	// DefaultBundleGrace is how long an unreferenced bundle is kept after
	// a run last chose it.
	DefaultBundleGrace = 10 * time.Minute
)

// TakesBundles implements the server's bundle taker: every runbook can
// run in a Job, the server ships the files of those not of the built-in
// library in RunRequest.Bundle.
func (j *Executor) TakesBundles() bool { return true }

// ensureBundle creates b's ConfigMap in ns, or reuses the one of that
// name after checking that it holds exactly b (a ConfigMap of the name
// with other content is an error, never used); either way it marks the
// bundle used now.
func (j *Executor) ensureBundle(ctx context.Context, ns string, b *bundle.Bundle) error {
	cms := j.Client.CoreV1().ConfigMaps(ns)
	now := time.Now().UTC().Format(time.RFC3339)
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: b.Name(), Namespace: ns,
			Labels:      map[string]string{BundleLabel: b.Name(), "app.kubernetes.io/managed-by": "kdiag"},
			Annotations: map[string]string{"kdiag.io/digest": b.Digest, "kdiag.io/runbook": b.Manifest.Runbook, bundleUsed: now}},
		Data:      b.Data,
		Immutable: ptr(true),
	}
	_, err := cms.Create(ctx, cm, metav1.CreateOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create the bundle configmap %s/%s: %w", ns, cm.Name, err)
	}
	old, err := cms.Get(ctx, cm.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("get the bundle configmap %s/%s: %w", ns, cm.Name, err)
	}
	if _, err := bundle.Verify(old.Data, b.Digest); err != nil || len(old.BinaryData) > 0 {
		if err == nil {
			err = fmt.Errorf("it has binaryData")
		}
		why := strings.TrimPrefix(err.Error(), "bundle "+b.Digest+": ")
		return fmt.Errorf("the configmap %s/%s exists but does not hold bundle %s (%s); refusing to use it: delete it and the next run recreates it", ns, cm.Name, b.Digest, why)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, bundleUsed, now)
	if _, err := cms.Patch(ctx, cm.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("mark the bundle configmap %s/%s used: %w", ns, cm.Name, err)
	}
	return nil
}

// mountBundle mounts the bundle's ConfigMap into the Job's pod and labels
// the Job with it.
func mountBundle(spec *corev1.PodSpec, ctr *corev1.Container, labels map[string]string, b *bundle.Bundle) {
	labels[BundleLabel] = b.Name()
	spec.Volumes = append(spec.Volumes, corev1.Volume{Name: "bundle", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
		LocalObjectReference: corev1.LocalObjectReference{Name: b.Name()}, DefaultMode: ptr(int32(0o444))}}})
	ctr.VolumeMounts = append(ctr.VolumeMounts, corev1.VolumeMount{Name: "bundle", MountPath: bundleDir, ReadOnly: true})
}

// CollectBundles deletes the bundle ConfigMaps of the Jobs' namespace
// that no Job there uses and that no run chose within the grace period
// (BundleGrace, default DefaultBundleGrace). kdiag serve calls it at
// start-up; the executor after each run. It returns the names deleted.
func (j *Executor) CollectBundles(ctx context.Context) ([]string, error) {
	ns := j.Config.Namespace
	grace := j.BundleGrace
	if grace == 0 {
		grace = DefaultBundleGrace
	}
	cms, err := j.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: BundleLabel})
	if err != nil {
		return nil, fmt.Errorf("list bundles in %s: %w", ns, err)
	}
	if len(cms.Items) == 0 {
		return nil, nil
	}
	jobs, err := j.Client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{LabelSelector: BundleLabel})
	if err != nil {
		return nil, fmt.Errorf("list jobs in %s: %w", ns, err)
	}
	used := map[string]bool{}
	for _, jb := range jobs.Items {
		used[jb.Labels[BundleLabel]] = true
	}
	var deleted []string
	now := time.Now()
	for i := range cms.Items {
		cm := &cms.Items[i]
		last, perr := time.Parse(time.RFC3339, cm.Annotations[bundleUsed])
		if perr != nil {
			last = cm.CreationTimestamp.Time
		}
		if used[cm.Name] || now.Sub(last) < grace {
			continue
		}
		// The precondition keeps a bundle a run chose since the list.
		err := j.Client.CoreV1().ConfigMaps(ns).Delete(ctx, cm.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cm.ResourceVersion}})
		if err == nil {
			deleted = append(deleted, cm.Name)
		}
	}
	return deleted, nil
}
