//go:build !linux || !(amd64 || arm64)

package ebpf

import (
	"context"
	"fmt"
	"runtime"
)

// Check says whether eBPF tracing can run here; it cannot on this platform.
func Check() error {
	return fmt.Errorf("%w: needs Linux on amd64 or arm64, this is %s/%s", ErrUnsupported, runtime.GOOS, runtime.GOARCH)
}

// Sample traces syscalls; it cannot on this platform.
func Sample(ctx context.Context, opts Options) (*Result, error) {
	return nil, Check()
}
