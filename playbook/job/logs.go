package job

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	corev1 "k8s.io/api/core/v1"
)

// streamDoneOrNil is closed when the log stream has ended; nil (never
// ready) before it starts or once its end has been seen.
func (r *jobRun) streamDoneOrNil() <-chan struct{} {
	if r.streamDone == nil || r.endSeen {
		return nil
	}
	return r.streamDone
}

// streamEnded reports whether the log stream has ended, remembering that
// its end was seen.
func (r *jobRun) streamEnded() bool {
	if r.streamDone == nil {
		return false
	}
	select {
	case <-r.streamDone:
		r.endSeen = true
		return true
	default:
		return false
	}
}

// startStream follows the container's log in the background, feeding
// the frames to the transcript as they come.
func (r *jobRun) startStream(pod string) {
	if r.streamDone != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.streamDone, r.stopStream = make(chan struct{}), cancel
	go func() {
		defer close(r.streamDone)
		rc, err := r.j.Client.CoreV1().Pods(r.job.Namespace).GetLogs(pod, &corev1.PodLogOptions{Container: "kdiag", Follow: true}).Stream(ctx)
		if err != nil {
			return // the final read of the whole log makes up for it
		}
		defer rc.Close()
		eachLine(rc, func(l []byte) {
			r.mu.Lock()
			defer r.mu.Unlock()
			if ev := r.live.Line(l); ev != nil {
				r.sink.append(ev)
			}
		})
	}()
}

// maxLogLine bounds a line of a Job's log: frames are at most a few KiB
// and the rest is kdiag's report; the part of a longer line past the
// bound is dropped (a frame cut so fails its MAC or its JSON).
const maxLogLine = 1 << 20

// eachLine calls fn with every line of rd, without its newline, cut at
// maxLogLine bytes.
func eachLine(rd io.Reader, fn func([]byte)) {
	br := bufio.NewReaderSize(rd, 64<<10)
	var l []byte
	cut := false
	for {
		frag, err := br.ReadSlice('\n')
		if cut = cut || len(l)+len(frag) > maxLogLine; !cut {
			l = append(l, frag...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if len(l) > 0 {
			fn(bytes.TrimRight(l, "\r\n"))
		}
		l, cut = l[:0], false
		if err != nil {
			return
		}
	}
}

// waitStream waits for the log stream to end, at most d.
func (r *jobRun) waitStream(d time.Duration) {
	if r.streamDone == nil {
		return
	}
	select {
	case <-r.streamDone:
	case <-time.After(d):
		r.stopStream()
		<-r.streamDone
	}
}

// reread reads the pod's whole log once the stream has ended and keeps
// it if it holds more of the transcript than the stream gave (the
// stream broke, or started after the container had ended).
func (r *jobRun) reread(ctx context.Context) {
	if r.pod == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	rc, err := r.j.Client.CoreV1().Pods(r.job.Namespace).GetLogs(r.pod.Name, &corev1.PodLogOptions{Container: "kdiag"}).Stream(ctx)
	if err != nil {
		return
	}
	defer rc.Close()
	full := transcript.NewFrameReader(r.key)
	eachLine(rc, func(l []byte) { full.Line(l) })
	r.mu.Lock()
	defer r.mu.Unlock()
	if full.Err() != nil || len(full.Events()) < len(r.live.Events()) {
		return
	}
	if len(full.Events()) > len(r.live.Events()) {
		r.sink.rewrite(full.Events())
	}
	r.live = full
}
