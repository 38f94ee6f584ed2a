package agent

import (
	"strings"
	"testing"
)

func TestImage(t *testing.T) {
	for _, tc := range []struct{ version, want string }{
		{"v0.2.0", "ghcr.io/kdiag/kdiag:v0.2.0"},
		{"v0.0.0-20261201003000-3730f35abcde+dirty", "ghcr.io/kdiag/kdiag:v0.0.0-20261201003000-3730f35abcde-dirty"},
		{"", "ghcr.io/kdiag/kdiag:v"},
		{"-x", "ghcr.io/kdiag/kdiag:v-x"},
		{"v1/../x:y", "ghcr.io/kdiag/kdiag:v1-..-x-y"},
	} {
		if got := Image(tc.version); got != tc.want {
			t.Errorf("Image(%q) = %q, want %q", tc.version, got, tc.want)
		}
	}
	if got := Image(strings.Repeat("a", 300)); len(got) != len(ImageRepository)+1+128 {
		t.Errorf("long version: tag of %d characters", len(got)-len(ImageRepository)-1)
	}
}
