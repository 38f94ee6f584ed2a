package job

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kdiag/kdiag/playbook"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// Episode markers: a ConfigMap per alert episode (RunRequest.Key) in the
// Jobs' namespace, created before the run's Job. Two replicas of the
// server given the same alert race to create it; the API server lets one
// win, and the other stores its run as a duplicate. The marker outlives
// the run by the dedupe window (annotation expires), and a marker whose
// run never ended (a server killed mid-run) expires at its deadline.
const (
	EpisodeLabel      = "kdiag.io/episode"
	episodeRun        = "kdiag.io/run"
	episodeExpires    = "kdiag.io/expires"
	episodeMaxRunTime = time.Hour
)

func episodeName(key string) string { return "kdiag-episode-" + strings.ToLower(key) }

// claim creates the marker of req's episode, or returns a
// playbook.DuplicateError when another run holds it. release(ended)
// gives the marker its expiry after the run (ended), or deletes it when
// the run never started.
func (j *Executor) claim(ctx context.Context, req playbook.RunRequest, ns string) (release func(ended bool), err error) {
	if req.Key == "" {
		return func(bool) {}, nil
	}
	cms := j.Client.CoreV1().ConfigMaps(ns)
	j.collectEpisodes(ctx, ns)
	limit := req.Timeout
	if limit <= 0 {
		limit = episodeMaxRunTime
	}
	name := episodeName(req.Key)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
		Labels:      map[string]string{EpisodeLabel: req.Key, "app.kubernetes.io/managed-by": "kdiag"},
		Annotations: map[string]string{episodeRun: req.ID, episodeExpires: time.Now().Add(limit + j.DedupeWindow).UTC().Format(time.RFC3339)}}}
	for attempt := 0; ; attempt++ {
		_, err = cms.Create(ctx, cm, metav1.CreateOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("create the episode marker %s/%s: %w", ns, name, err)
		}
		old, gerr := cms.Get(ctx, name, metav1.GetOptions{})
		if gerr == nil && expired(old, time.Now()) && attempt == 0 {
			_ = cms.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &old.ResourceVersion}})
			continue
		}
		other := "?"
		if gerr == nil {
			other = old.Annotations[episodeRun]
		}
		return nil, &playbook.DuplicateError{What: fmt.Sprintf("the episode marker configmap %s/%s (run %s)", ns, name, other)}
	}
	return func(ended bool) {
		bg, cancel := context.WithTimeout(context.Background(), apiTimeout)
		defer cancel()
		if !ended {
			_ = cms.Delete(bg, name, metav1.DeleteOptions{})
			return
		}
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, episodeExpires, time.Now().Add(j.DedupeWindow).UTC().Format(time.RFC3339))
		_, _ = cms.Patch(bg, name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	}, nil
}

// expired reports whether an episode marker's expiry has passed.
func expired(cm *corev1.ConfigMap, now time.Time) bool {
	t, err := time.Parse(time.RFC3339, cm.Annotations[episodeExpires])
	return err != nil || now.After(t)
}

// collectEpisodes deletes the expired episode markers of namespace ns.
func (j *Executor) collectEpisodes(ctx context.Context, ns string) {
	list, err := j.Client.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{LabelSelector: EpisodeLabel})
	if err != nil {
		return
	}
	now := time.Now()
	for i := range list.Items {
		cm := &list.Items[i]
		if expired(cm, now) {
			_ = j.Client.CoreV1().ConfigMaps(ns).Delete(ctx, cm.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &cm.ResourceVersion}})
		}
	}
}

// Claim implements the server's claim of a fan-out run's episode as a
// whole, before any of its pods runs: the same marker as a run's, in
// the Jobs' namespace, so that a replica of the server given the same
// alert does not run a second set. release(ended) is as claim's.
func (j *Executor) Claim(ctx context.Context, req playbook.RunRequest) (release func(ended bool), err error) {
	return j.claim(ctx, req, j.Config.Namespace)
}
