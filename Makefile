# kdiag — scripted diagnosis runbooks for Kubernetes.
#
#   make demo    build kdiag, start the local cluster, break a pod, diagnose and fix it
#   make demo-alerts  the same through Prometheus, Alertmanager and kdiag serve
#   make test    unit, real-Linux, real-cluster and replay tests (root; starts the cluster)
#   make lint    gofmt, go vet, staticcheck
#   make bench   benchmarks, compared with kubectl/crictl/nsenter/curl/strace

SHELL       := /bin/bash
GO          ?= go
VERSION     ?= v0.1.0-$(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
KDIAG       := $(CURDIR)/bin/kdiag
CLUSTER     := test/cluster/cluster.sh
export CGO_ENABLED := 0
GOTEST_TIMEOUT ?= 45m
# Fuzzing is bounded by executions, not time: a -fuzztime duration races the
# workers at its deadline in Go 1.26 (go.dev/issue/75804, "context deadline
# exceeded" with no crasher under load).
FUZZTIME    ?= 150000x

.PHONY: image image-import build test test-serial unit e2e fuzz lint bench demo demo-replay cluster-up cluster-down docs clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(KDIAG) ./cmd/kdiag

# kdiag's container image, built without Docker (cmd/kdiag-image, a module of
# its own): dist/kdiag-image.tar under the default reference of bin/kdiag,
# ghcr.io/kdiag/kdiag:<version>; `make image-import` loads it into the local
# cluster, where --agent-image and the Job executor's defaults then work.
# A release pushes it: bin/kdiag-image -ref REF -push -binary linux/amd64=... -binary linux/arm64=...
image: build
	cd cmd/kdiag-image && $(GO) build -o $(CURDIR)/bin/kdiag-image .
	mkdir -p dist
	bin/kdiag-image -ref "$$($(KDIAG) version -o json | sed -n 's/.*"image": *"\([^"]*\)".*/\1/p')" -binary $(KDIAG) -o dist/kdiag-image.tar

image-import: image cluster-up
	$(CLUSTER) import-tar dist/kdiag-image.tar

# The whole suite: the cluster comes up first (a cold build takes 12-20 min on
# 2 cores, then it is cached), then every package's tests, then short fuzzing.
test: build cluster-up
	$(GO) test -timeout $(GOTEST_TIMEOUT) -count=1 ./...
	cd cmd/kdiag-image && $(GO) test -count=1 ./...
	$(KDIAG) test runbooks
	$(MAKE) fuzz
	$(MAKE) test-serial

# Tests that change the shared cluster, so they run alone, after everything
# else: fault injection freezes the API server, kubelet and containerd
# (SIGSTOP) during kdiag runs; the two-node tests add kdiag-node2.
test-serial: build cluster-up
	$(GO) test -tags faults -p 1 -timeout 35m -count=1 ./test/faults
	$(GO) test -tags nodes -p 1 -timeout 15m -count=1 ./test/nodes

unit: build
	KDIAG_E2E=0 $(GO) test -count=1 ./...

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRead -fuzztime $(FUZZTIME) ./engine/transcript
	$(GO) test -run '^$$' -fuzz FuzzDecodeEvent -fuzztime $(FUZZTIME) ./engine/transcript
	$(GO) test -run '^$$' -fuzz FuzzBindParams -fuzztime $(FUZZTIME) ./engine
	$(GO) test -run '^$$' -fuzz FuzzDecodeJSON -fuzztime $(FUZZTIME) ./engine

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags 'faults nodes' ./test/...
	@command -v staticcheck >/dev/null || PATH=$$PATH:$$($(GO) env GOPATH)/bin command -v staticcheck >/dev/null || { echo "staticcheck missing: go install honnef.co/go/tools/cmd/staticcheck@v0.8.2"; exit 1; }
	PATH=$$PATH:$$($(GO) env GOPATH)/bin staticcheck ./...
	cd cmd/kdiag-image && $(GO) vet ./... && PATH=$$PATH:$$($(GO) env GOPATH)/bin staticcheck ./...
	$(GO) run ./cmd/kdiag lint runbooks

bench: build cluster-up
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./engine
	@for s in bench/*.sh; do echo "== $$s"; bash $$s || exit 1; done

# docs/builtins.md is generated from the built-ins' declarations (a test checks it).
docs: build
	$(KDIAG) builtins --markdown > docs/builtins.md
	$(KDIAG) list --markdown > docs/runbooks.md

cluster-up:
	$(CLUSTER) all

cluster-down:
	$(CLUSTER) down

demo: build cluster-up
	bash examples/broken-pod/demo.sh

# The seed incident through a real alert pipeline (test/alerts/pipeline.sh builds
# Prometheus and Alertmanager into /var/cache/kdiag-alerts on first use, ~10 min).
.PHONY: demo-alerts
demo-alerts: build cluster-up
	bash test/alerts/demo.sh

demo-replay: build
	$(KDIAG) replay examples/broken-pod/transcript.jsonl

clean:
	rm -rf bin .kdiag
