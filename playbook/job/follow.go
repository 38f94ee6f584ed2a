package job

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
)

// How long the follower gives things, named.
const (
	// failedCreateAfter is how long a Job may have no pod before the
	// follower looks for a FailedCreate event saying why (no
	// ServiceAccount, a policy refusing the pod).
	failedCreateAfter = 5 * time.Second
	// streamDrain is how long the log stream has, once the container
	// ended, to deliver the rest of the transcript.
	streamDrain = 10 * time.Second
	// streamGrace is added to the Job's termination grace: how long a
	// deleted or timed-out pod's stream has to end.
	streamGrace = 15 * time.Second
	// apiTimeout bounds the calls made after the run (delete the Job and
	// the frame key, read the whole log).
	apiTimeout = 30 * time.Second
	// defaultPoll is Executor.Poll's default.
	defaultPoll = 500 * time.Millisecond
)

// overdueAfter is how long past the Job's deadline the follower waits
// for the Job to be marked failed before it ends the run itself, saying
// who did not answer (a variable for tests).
var overdueAfter = 30 * time.Second

// stuckReasons are the reasons a container waits that no waiting fixes:
// the run fails at once instead of at the Job's deadline.
var stuckReasons = map[string]bool{
	"ErrImageNeverPull": true, "InvalidImageName": true, "ImagePullBackOff": true,
	"CreateContainerConfigError": true, "CreateContainerError": true,
}

// jobRun follows one run's Job.
type jobRun struct {
	j   *Executor
	job *batchv1.Job
	req playbook.RunRequest
	key []byte // the run's frame key

	mu   sync.Mutex
	live *transcript.FrameReader
	sink *transcriptSink

	w          *jobWatch
	pod        *corev1.Pod
	pending    string // why the pod is not running yet, for messages
	streamDone chan struct{}
	stopStream context.CancelFunc
	endSeen    bool // the stream's end was taken into account
}

// follow waits for the Job's pod, streams its log into the transcript and
// maps how the run ended to an playbook.Outcome. The Job is deleted at the end.
func (j *Executor) follow(ctx context.Context, job *batchv1.Job, req playbook.RunRequest, key []byte) playbook.Outcome {
	r := &jobRun{j: j, job: job, req: req, sink: &transcriptSink{path: req.TranscriptPath}, key: key}
	r.live = transcript.NewFrameReader(key)
	out := r.run(ctx)
	defer j.deleteSecret(job.Namespace, frameKeySecret(req.ID))
	r.mu.Lock()
	if r.live.Err() != nil {
		out.Damaged = "transcript stream: " + r.live.Err().Error()
		if r.live.Forged() > 0 {
			out.Damaged = fmt.Sprintf("%s (%d forged frames dropped)", out.Damaged, r.live.Forged())
		}
	}
	r.mu.Unlock()
	if r.streamDone != nil {
		r.stopStream()
		<-r.streamDone
	}
	if err := r.sink.close(); err != nil && out.Message == "" {
		out.Message = err.Error()
	}
	if err := j.deleteJob(job); err != nil {
		out.Message = strings.TrimPrefix(out.Message+"; "+err.Error(), "; ")
	}
	return out
}

func (r *jobRun) name() string { return r.job.Namespace + "/" + r.job.Name }

// run follows the Job and its pod through informers, looking at them on
// every change and when the log stream ends, until the pod's container
// has ended, the Job failed or ctx is cancelled. Until the pod exists it
// also looks every Poll, for what no informer reports (FailedCreate
// events).
func (r *jobRun) run(ctx context.Context) playbook.Outcome {
	wctx, stop := context.WithCancel(ctx)
	r.w = r.watch(wctx)
	defer r.w.running.Wait()
	defer stop()
	poll := r.j.Poll
	if poll <= 0 {
		poll = defaultPoll
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	start := time.Now()
	// A Job past its deadline that no one marks failed: the API server
	// or the Job controller is not answering.
	var overdue <-chan time.Time
	if d := r.job.Spec.ActiveDeadlineSeconds; d != nil {
		tm := time.NewTimer(time.Duration(*d)*time.Second + overdueAfter)
		defer tm.Stop()
		overdue = tm.C
	}
	for {
		r.streamEnded()
		if r.w.hasSynced() {
			if out, done := r.check(ctx, time.Since(start)); done {
				return out
			}
		}
		var tick <-chan time.Time
		if r.pod == nil {
			tick = t.C
		}
		select {
		case <-ctx.Done():
			return r.cancel(ctx)
		case <-r.w.changed:
		case <-tick:
		case <-r.streamDoneOrNil():
		case <-overdue:
			return r.overdue(ctx)
		}
	}
}

// check looks at the Job and its pod, as the informers have them, once.
func (r *jobRun) check(ctx context.Context, elapsed time.Duration) (playbook.Outcome, bool) {
	if ctx.Err() != nil {
		return playbook.Outcome{}, false
	}
	job := r.w.currentJob(r.job.Namespace, r.job.Name)
	if job == nil {
		return r.ended(fmt.Sprintf("job %s was deleted while the run was going", r.name())), true
	}
	if why := deadlineText(job, r.name()); why != "" {
		return r.ended(why + r.pendingText() + r.sick(ctx)), true
	}
	pod := r.w.firstPod()
	if pod == nil {
		if r.pod == nil && elapsed > failedCreateAfter {
			if msg := r.failedCreate(ctx); msg != "" {
				return playbook.Outcome{Status: playbook.StatusFailed, Message: fmt.Sprintf("job %s cannot create its pod: %s", r.name(), msg)}, true
			}
		}
		if r.pod != nil {
			return r.ended(fmt.Sprintf("the pod %s of job %s was deleted while the run was going", r.pod.Name, r.name())), true
		}
		return playbook.Outcome{}, false
	}
	r.pod = pod
	st := containerStatus(pod)
	switch {
	case st == nil:
		r.pending = podPending(pod)
	case st.State.Waiting != nil:
		w := st.State.Waiting
		r.pending = strings.TrimSuffix(w.Reason+": "+w.Message, ": ")
		if stuckReasons[w.Reason] {
			return playbook.Outcome{Status: playbook.StatusFailed, Message: fmt.Sprintf("the pod %s of job %s cannot start kdiag: %s: %s", pod.Name, r.name(), w.Reason, w.Message)}, true
		}
	case st.State.Running != nil:
		r.pending = ""
		r.startStream(pod.Name)
	case st.State.Terminated != nil:
		return r.terminated(ctx, st.State.Terminated), true
	}
	return playbook.Outcome{}, false
}

// containerStatus returns the status of the pod's kdiag container.
func containerStatus(pod *corev1.Pod) *corev1.ContainerStatus {
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == "kdiag" {
			return &pod.Status.ContainerStatuses[i]
		}
	}
	return nil
}

// podPending says why a pod has no container status yet.
func podPending(pod *corev1.Pod) string {
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue && c.Message != "" {
			return c.Reason + ": " + c.Message
		}
	}
	return string(pod.Status.Phase)
}

func (r *jobRun) pendingText() string {
	if r.pending == "" {
		return ""
	}
	return "; the pod was " + r.pending
}

// failedCreate returns the message of a FailedCreate event of the Job
// (no ServiceAccount, a policy refusing the pod), if any.
func (r *jobRun) failedCreate(ctx context.Context) string {
	sel := fields.Set{"involvedObject.kind": "Job", "involvedObject.name": r.job.Name, "reason": "FailedCreate"}.AsSelector().String()
	evs, err := r.j.Client.CoreV1().Events(r.job.Namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil || len(evs.Items) == 0 {
		return ""
	}
	return evs.Items[len(evs.Items)-1].Message
}

// terminated reads the whole log of the ended container, keeps the more
// complete of it and the streamed transcript, and maps the end.
func (r *jobRun) terminated(ctx context.Context, t *corev1.ContainerStateTerminated) playbook.Outcome {
	r.waitStream(streamDrain)
	r.reread(ctx)
	if why := r.deadline(ctx); why != "" {
		return r.ended(why)
	}
	return r.outcome("kdiag in job " + r.name() + " ended with " + exitText(t))
}

// deadline says whether the Job failed for its deadline, which
// terminates the pod before the Job's condition may be seen.
func (r *jobRun) deadline(ctx context.Context) string {
	job, err := r.j.Client.BatchV1().Jobs(r.job.Namespace).Get(ctx, r.job.Name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return deadlineText(job, r.name())
}

// deadlineText describes a Job failed (or failing) for its deadline, or
// returns "".
func deadlineText(job *batchv1.Job, name string) string {
	for _, c := range job.Status.Conditions {
		if (c.Type == batchv1.JobFailed || c.Type == batchv1.JobFailureTarget) && c.Status == corev1.ConditionTrue && c.Reason == batchv1.JobReasonDeadlineExceeded {
			return fmt.Sprintf("job %s exceeded its deadline (activeDeadlineSeconds %d)", name, *job.Spec.ActiveDeadlineSeconds)
		}
	}
	return ""
}

// ended maps the end of a run whose pod ended without a terminated
// container status (deadline, deletion).
func (r *jobRun) ended(why string) playbook.Outcome {
	r.waitStream(r.j.Config.TerminationGrace + streamGrace)
	out := r.outcome(why)
	if r.live.Complete() && out.Status != playbook.StatusOK {
		out.Status, out.Message = playbook.StatusFailed, why+"; "+out.Message
	}
	return out
}

// cancel deletes the Job, so that the pod is terminated and kdiag ends
// the transcript with status cancelled, and waits for the transcript.
func (r *jobRun) cancel(ctx context.Context) playbook.Outcome {
	cause := context.Cause(ctx)
	if err := r.j.deleteJob(r.job); err != nil {
		return playbook.Outcome{Status: playbook.StatusCancelled, Message: fmt.Sprintf("%v; %v", cause, err)}
	}
	if r.streamDone == nil {
		return playbook.Outcome{Status: playbook.StatusCancelled, Message: fmt.Sprintf("cancelled before kdiag started in job %s: %v", r.name(), cause)}
	}
	r.waitStream(r.j.Config.TerminationGrace + streamGrace)
	if !r.live.Complete() {
		r.reread(context.Background())
	}
	out := r.outcome("")
	if out.Status != playbook.StatusCancelled && !r.live.Complete() {
		out.Status = playbook.StatusCancelled
	}
	msg := fmt.Sprintf("%v (job %s deleted)", cause, r.name())
	if !r.live.Complete() {
		msg += "; the transcript ends before its footer"
	}
	out.Message = strings.TrimPrefix(out.Message+"; "+msg, "; ")
	return out
}

// outcome maps the transcript (its footer, when it has one) or, lacking
// one, why the pod ended and its last lines of output, to an playbook.Outcome.
func (r *jobRun) outcome(why string) playbook.Outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := playbook.Outcome{Status: playbook.StatusFailed}
	if ft := r.live.Footer(); ft != nil && r.live.Err() == nil {
		out.Status, out.Message = ft.Status, ft.Message
		return out
	}
	var parts []string
	if why != "" {
		parts = append(parts, why)
	}
	if r.live.Err() != nil {
		parts = append(parts, "transcript stream: "+r.live.Err().Error())
	}
	if len(r.live.Events()) > 0 {
		parts = append(parts, fmt.Sprintf("the transcript ends after %d events, without a footer", len(r.live.Events())))
	}
	if last := lastLines(r.live.Other(), 3); last != "" {
		parts = append(parts, last)
	}
	out.Message = strings.Join(parts, ": ")
	return out
}

// lastLines returns the last n lines of output, from the last error
// kdiag printed ("kdiag: ...") if it is among them.
func lastLines(lines []string, n int) string {
	from := max(len(lines)-n, 0)
	for i := len(lines) - 1; i >= from; i-- {
		if strings.HasPrefix(lines[i], "kdiag: ") {
			from = i
			break
		}
	}
	return strings.TrimPrefix(strings.Join(lines[from:], " / "), "kdiag: ")
}

// deleteJob deletes a Job and, through background propagation, its pod,
// retrying (deleteFor) while the API server does not answer.
func (j *Executor) deleteJob(job *batchv1.Job) error {
	bg := metav1.DeletePropagationBackground
	err := retryDelete(func(ctx context.Context) error {
		return j.Client.BatchV1().Jobs(job.Namespace).Delete(ctx, job.Name, metav1.DeleteOptions{PropagationPolicy: &bg})
	})
	if err != nil {
		return fmt.Errorf("delete job %s/%s: %w (it is left behind: kubectl delete job -n %s %s; its pod and frame key go with it)", job.Namespace, job.Name, err, job.Namespace, job.Name)
	}
	return nil
}

// deleteSecret deletes a run's frame key Secret, retrying as deleteJob
// does (owned by the Job, it goes with the Job anyway).
func (j *Executor) deleteSecret(ns, name string) {
	_ = retryDelete(func(ctx context.Context) error {
		return j.Client.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{})
	})
}

// How deletes after a run retry: each try bounded by apiTimeout, all by
// deleteFor (variables for tests).
var (
	deleteFor   = 90 * time.Second
	deleteRetry = 2 * time.Second
)

// retryDelete calls del until it succeeds, finds nothing to delete, is
// refused (the API server answered), or deleteFor has passed.
func retryDelete(del func(context.Context) error) error {
	end := time.Now().Add(deleteFor)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), min(apiTimeout, max(time.Until(end), time.Second)))
		err := del(ctx)
		cancel()
		if err == nil || apierrors.IsNotFound(err) {
			return nil
		}
		if refused(err) || time.Now().Add(deleteRetry).After(end) {
			return err
		}
		time.Sleep(deleteRetry)
	}
}
