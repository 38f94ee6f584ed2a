package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// platformBinary is a kdiag binary and the platform it is built for.
type platformBinary struct {
	OS, Arch, Path string
}

// Binary is where the image holds kdiag; the node agent execs it there.
const Binary = "/kdiag"

// run builds the image of bins as ref and writes it to out or pushes it.
func run(refStr string, bins []platformBinary, out string, push bool, version string) error {
	if refStr == "" || len(bins) == 0 || (out == "") == !push {
		return errors.New("give -ref, at least one -binary, and one of -o FILE.tar or -push")
	}
	ref, err := name.NewTag(refStr, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("-ref %s: %v (want REGISTRY/REPOSITORY:TAG)", refStr, err)
	}
	if ref.TagStr() == "latest" {
		return fmt.Errorf("-ref %s: give a version tag, not latest", refStr)
	}
	if version == "" {
		version = ref.TagStr()
	}
	if out != "" {
		if len(bins) != 1 {
			return errors.New("-o writes one platform: give one -binary")
		}
		img, err := build(bins[0], version)
		if err != nil {
			return err
		}
		return tarball.WriteToFile(out, ref, img)
	}
	auth := remote.WithAuthFromKeychain(authn.DefaultKeychain)
	if len(bins) == 1 {
		img, err := build(bins[0], version)
		if err != nil {
			return err
		}
		return remote.Write(ref, img, auth)
	}
	var idx v1.ImageIndex = empty.Index
	idx = mutate.IndexMediaType(idx, types.OCIImageIndex)
	for _, b := range bins {
		img, err := build(b, version)
		if err != nil {
			return err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: b.OS, Architecture: b.Arch}}})
	}
	return remote.WriteIndex(ref, idx, auth)
}

// build returns the image of one binary.
func build(b platformBinary, version string) (v1.Image, error) {
	bin, err := os.ReadFile(b.Path)
	if err != nil {
		return nil, fmt.Errorf("-binary: %v", err)
	}
	if !bytes.HasPrefix(bin, []byte("\x7fELF")) {
		return nil, fmt.Errorf("-binary %s: not an ELF executable (build kdiag with GOOS=linux CGO_ENABLED=0)", b.Path)
	}
	layerTar, err := rootfs(bin)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = b.OS, b.Arch
	cf.Config.Entrypoint = []string{Binary}
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.WorkingDir = "/"
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":    "kdiag",
		"org.opencontainers.image.source":   "https://github.com/kdiag/kdiag",
		"org.opencontainers.image.licenses": "Apache-2.0",
		"org.opencontainers.image.version":  version,
	}
	return mutate.ConfigFile(img, cf)
}

// rootfs returns the layer's tar: kdiag, the users files and /tmp, with
// zero times so that the same binary gives the same digest.
func rootfs(bin []byte) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files := []struct {
		name string
		mode int64
		typ  byte
		body []byte
	}{
		{"etc/", 0o755, tar.TypeDir, nil},
		{"etc/passwd", 0o644, tar.TypeReg, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{"etc/group", 0o644, tar.TypeReg, []byte("root:x:0:\nnonroot:x:65532:\n")},
		{"tmp/", 0o1777, tar.TypeDir, nil},
		{"kdiag", 0o755, tar.TypeReg, bin},
	}
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Typeflag: f.typ, Size: int64(len(f.body)), Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
