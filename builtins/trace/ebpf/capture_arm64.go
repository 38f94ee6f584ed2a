//go:build linux

package ebpf

// captureLegacy is empty on arm64, which has only the *at forms.
var captureLegacy = map[uint32]capture{}
