package job

import (
	"context"
	"slices"
	"strings"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"
)

// jobWatch keeps a run's Job and its pods in informer caches and says
// when either changed, so that the follower looks at them on news
// instead of polling the API server.
type jobWatch struct {
	job, pods cache.Store
	changed   chan struct{} // one pending change at most
	synced    []cache.InformerSynced
	running   sync.WaitGroup // the informers, until their ctx ends
}

// watch starts the informers of r's Job (by name) and its pods (by the
// job-name label); they stop when ctx ends (running says when). An API error (a passing one,
// or a permission the server lacks) is retried by the informers, as a
// poll would look again.
func (r *jobRun) watch(ctx context.Context) *jobWatch {
	w := &jobWatch{changed: make(chan struct{}, 1)}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { w.notify() },
		UpdateFunc: func(any, any) { w.notify() },
		DeleteFunc: func(any) { w.notify() },
	}
	jobs, pods := r.j.Client.BatchV1().Jobs(r.job.Namespace), r.j.Client.CoreV1().Pods(r.job.Namespace)
	byName := fields.OneTermEqualSelector("metadata.name", r.job.Name).String()
	byJob := batchv1.JobNameLabel + "=" + r.job.Name
	var jc, pc cache.Controller
	w.job, jc = cache.NewInformerWithOptions(cache.InformerOptions{
		ObjectType: &batchv1.Job{}, Handler: notify,
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.FieldSelector = byName
				return jobs.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.FieldSelector = byName
				return jobs.Watch(ctx, o)
			},
		}, r.j.Client),
	})
	w.pods, pc = cache.NewInformerWithOptions(cache.InformerOptions{
		ObjectType: &corev1.Pod{}, Handler: notify,
		ListerWatcher: cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{
			ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.LabelSelector = byJob
				return pods.List(ctx, o)
			},
			WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.LabelSelector = byJob
				return pods.Watch(ctx, o)
			},
		}, r.j.Client),
	})
	w.running.Go(func() { jc.RunWithContext(ctx) })
	w.running.Go(func() { pc.RunWithContext(ctx) })
	w.synced = []cache.InformerSynced{jc.HasSynced, pc.HasSynced}
	return w
}

func (w *jobWatch) notify() {
	select {
	case w.changed <- struct{}{}:
	default:
	}
}

// hasSynced reports whether both caches hold the initial list.
func (w *jobWatch) hasSynced() bool {
	for _, s := range w.synced {
		if !s() {
			return false
		}
	}
	return true
}

// currentJob returns the cached Job, nil once it is deleted.
func (w *jobWatch) currentJob(ns, name string) *batchv1.Job {
	o, ok, _ := w.job.GetByKey(ns + "/" + name)
	if !ok {
		return nil
	}
	return o.(*batchv1.Job)
}

// firstPod returns the Job's pod (the first by name: the Job has a
// backoff limit of 0, so one), nil when there is none.
func (w *jobWatch) firstPod() *corev1.Pod {
	var pods []*corev1.Pod
	for _, o := range w.pods.List() {
		pods = append(pods, o.(*corev1.Pod))
	}
	if len(pods) == 0 {
		return nil
	}
	return slices.MinFunc(pods, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
}
