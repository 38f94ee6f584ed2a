package ebpf

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -cc clang-14 -strip llvm-strip-14 -target amd64,arm64 -tags linux kdiag kdiag.c -- -I./headers -O2 -g -Wall
