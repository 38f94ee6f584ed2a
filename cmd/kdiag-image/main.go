// Command kdiag-image builds kdiag's container image without Docker: one
// layer holding the kdiag binary at /kdiag (the entrypoint), /etc/passwd,
// /etc/group and /tmp, on no base image. It writes the image as a tarball
// that `ctr images import` (and `docker load`) read, or pushes it, one
// platform or an index of several, with the registry credentials of
// ~/.docker/config.json.
//
//	kdiag-image -ref ghcr.io/kdiag/kdiag:v0.2.0 -binary bin/kdiag -o dist/kdiag-image.tar
//	kdiag-image -ref ghcr.io/kdiag/kdiag:v0.2.0 -push \
//	    -binary linux/amd64=dist/kdiag_linux_amd64_v1/kdiag -binary linux/arm64=dist/kdiag_linux_arm64/kdiag
//
// It is a module of its own so that kdiag's go.mod holds only what kdiag
// itself needs; `make image` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"strings"
)

// binaryFlag collects -binary [OS/ARCH=]PATH values.
type binaryFlag []platformBinary

func (b *binaryFlag) String() string { return fmt.Sprint(*b) }

func (b *binaryFlag) Set(v string) error {
	p := platformBinary{OS: "linux", Arch: runtime.GOARCH, Path: v}
	if plat, path, ok := strings.Cut(v, "="); ok {
		os, arch, ok := strings.Cut(plat, "/")
		if !ok || os == "" || arch == "" {
			return fmt.Errorf("%q: want OS/ARCH=PATH, e.g. linux/arm64=dist/kdiag", v)
		}
		p = platformBinary{OS: os, Arch: arch, Path: path}
	}
	*b = append(*b, p)
	return nil
}

func main() {
	var bins binaryFlag
	ref := flag.String("ref", "", "the image reference, REGISTRY/REPOSITORY:TAG (e.g. ghcr.io/kdiag/kdiag:v0.2.0)")
	out := flag.String("o", "", "write the image as a tarball to this file (one -binary)")
	push := flag.Bool("push", false, "push the image (an index when several -binary are given)")
	version := flag.String("version", "", "the org.opencontainers.image.version label (default: the tag)")
	flag.Var(&bins, "binary", "[OS/ARCH=]PATH of a statically linked kdiag (repeatable; default platform linux/"+runtime.GOARCH+")")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: kdiag-image -ref REF -binary [OS/ARCH=]PATH... (-o FILE.tar | -push)\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if err := run(*ref, bins, *out, *push, *version); err != nil {
		fmt.Fprintln(os.Stderr, "kdiag-image:", err)
		os.Exit(1)
	}
}
