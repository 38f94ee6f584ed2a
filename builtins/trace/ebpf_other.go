//go:build !(linux && (amd64 || arm64))

package trace

import (
	"context"
	"runtime"

	"github.com/kdiag/kdiag/engine"
)

// sampler traces with one backend.
type sampler func(context.Context, straceOptions) (*Result, error)

// sampleWith runs a request with ptrace, the only backend that can be
// asked for here (and it says it is not supported either).
func sampleWith(ctx context.Context, opts straceOptions, mode func(context.Context, straceOptions, sampler) (*Result, error)) (*Result, error) {
	if opts.Backend == "ebpf" {
		return nil, engine.Errorf(engine.KindInvalid, "strace_sample: backend \"ebpf\" is not supported on %s/%s (Linux on amd64 or arm64 only)", runtime.GOOS, runtime.GOARCH)
	}
	return mode(ctx, opts, straceSample)
}
