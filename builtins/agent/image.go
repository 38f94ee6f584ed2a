package agent

import (
	"runtime/debug"
	"strings"
)

// ImageRepository is where kdiag's release images are published; the tag
// is the version (Image).
const ImageRepository = "ghcr.io/kdiag/kdiag"

// Image returns the reference of kdiag's image of version, e.g.
// ghcr.io/kdiag/kdiag:v0.2.0: the default agent and Job image of a kdiag
// of that version. Characters a tag cannot hold ("+" of a dirty build)
// become "-".
func Image(version string) string {
	var b strings.Builder
	for _, r := range version {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	tag := b.String()
	if tag == "" || tag[0] == '.' || tag[0] == '-' {
		tag = "v" + tag
	}
	if len(tag) > 128 {
		tag = tag[:128]
	}
	return ImageRepository + ":" + tag
}

// DefaultImage returns the agent image when Options.Image is empty: Image
// of this binary's module version (kdiag's command line passes its own
// version, which also knows -ldflags).
func DefaultImage() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return Image(bi.Main.Version)
	}
	return Image("v0.1.0-dev")
}
