//go:build !(linux && (amd64 || arm64))

package trace

import (
	"context"
	"runtime"

	"github.com/kdiag/kdiag/engine"
)

// straceSample is only implemented on Linux x86_64 and aarch64.
func straceSample(ctx context.Context, opts straceOptions) (*Result, error) {
	return nil, engine.Errorf(engine.KindInvalid, "strace_sample: not supported on %s/%s (Linux on amd64 or arm64 only)", runtime.GOOS, runtime.GOARCH)
}

// sampleUntil is only implemented on Linux x86_64 and aarch64.
func sampleUntil(ctx context.Context, opts straceOptions, run sampler) (*Result, error) {
	return run(ctx, opts)
}

// sampleRequest is only implemented on Linux x86_64 and aarch64.
func sampleRequest(ctx context.Context, opts straceOptions, p *Probe, run sampler) (*Result, error) {
	return run(ctx, opts)
}
