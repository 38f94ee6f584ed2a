//go:build linux

package nodetest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// AppPackage is the import path of the broken app.
const AppPackage = "github.com/kdiag/kdiag/examples/broken-pod/app"

var (
	appOnce sync.Once
	appPath string
	appErr  error
)

// AppBinary returns the path of the broken app, built statically with the
// go command found in PATH (or GOROOT). The binary is cached in the
// temporary directory under a name derived from its sources and the Go
// version, so that it is built once, not once per test.
func AppBinary() (string, error) {
	appOnce.Do(func() { appPath, appErr = buildApp() })
	return appPath, appErr
}

func buildApp() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(build.Default.GOROOT, "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-f", "{{.Dir}}", AppPackage).Output()
	if err != nil {
		return "", fmt.Errorf("go list %s: %w", AppPackage, err)
	}
	dir := strings.TrimSpace(string(out))
	h := sha256.New()
	fmt.Fprintln(h, runtime.Version(), runtime.GOARCH)
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", filepath.Base(f), len(b))
		h.Write(b)
	}
	cache := filepath.Join(os.TempDir(), "kdiag-nodetest")
	bin := filepath.Join(cache, "broken-app-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(cache, "build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(goBin, "build", "-o", tmp.Name(), AppPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", AppPackage, err, b)
	}
	return bin, os.Rename(tmp.Name(), bin)
}
