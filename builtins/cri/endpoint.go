package cri

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// criConfigPath is crictl's configuration file; tests point it elsewhere.
var criConfigPath = "/etc/crictl.yaml"

// criSockets are the well-known CRI sockets tried, in order, when no
// endpoint is configured: containerd, CRI-O, k3s/RKE2, cri-dockerd and
// MicroK8s. Tests point it elsewhere.
var criSockets = []string{
	"/run/containerd/containerd.sock",
	"/run/crio/crio.sock",
	"/run/k3s/containerd/containerd.sock",
	"/var/run/containerd/containerd.sock",
	"/var/run/crio/crio.sock",
	"/var/run/k3s/containerd/containerd.sock",
	"/run/cri-dockerd.sock",
	"/var/snap/microk8s/common/run/containerd.sock",
}

// criEndpoint is a resolved CRI endpoint.
type criEndpoint struct {
	// Endpoint is as configured, e.g. "unix:///run/containerd/containerd.sock".
	Endpoint string
	// Socket is the unix socket path.
	Socket string
	// Source says where it came from: "runtime_endpoint", "--runtime-endpoint",
	// "CONTAINER_RUNTIME_ENDPOINT", the crictl.yaml path or "autodetected".
	Source string
}

// criNoEndpointError is returned when no endpoint is configured and no
// well-known socket exists.
type criNoEndpointError struct{ tried []string }

func (e *criNoEndpointError) Error() string {
	return fmt.Sprintf("no CRI runtime socket found (tried %s); pass runtime_endpoint=, kdiag --runtime-endpoint, "+
		"set CONTAINER_RUNTIME_ENDPOINT or runtime-endpoint in %s, e.g. unix:///run/containerd/containerd.sock",
		strings.Join(e.tried, ", "), criConfigPath)
}

// criResolveEndpointEnv picks the endpoint: the runtime_endpoint
// argument, kdiag's --runtime-endpoint (flag), the value of kdiag's
// $CONTAINER_RUNTIME_ENDPOINT (env; a node agent resolves with the
// environment of the kdiag that asked), runtime-endpoint of
// /etc/crictl.yaml, then the first well-known socket that exists.
func criResolveEndpointEnv(arg, flag, env string) (*criEndpoint, error) {
	for _, c := range []struct{ value, source string }{
		{arg, "runtime_endpoint"},
		{flag, "--runtime-endpoint"},
		{env, "CONTAINER_RUNTIME_ENDPOINT"},
	} {
		if c.value != "" {
			return criParseEndpoint(c.value, c.source)
		}
	}
	tried := []string{}
	if b, err := os.ReadFile(criConfigPath); err == nil {
		var cfg struct {
			RuntimeEndpoint string `yaml:"runtime-endpoint"`
		}
		if err := yaml.Unmarshal(b, &cfg); err != nil {
			return nil, fmt.Errorf("%s: %v", criConfigPath, err)
		}
		if cfg.RuntimeEndpoint != "" {
			return criParseEndpoint(cfg.RuntimeEndpoint, criConfigPath)
		}
		tried = append(tried, criConfigPath+" (no runtime-endpoint)")
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %v", criConfigPath, err)
	}
	seen := map[string]bool{}
	for _, p := range criSockets {
		if real := criRealPath(p); seen[real] {
			continue // /var/run is usually /run
		} else {
			seen[real] = true
		}
		tried = append(tried, p)
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == fs.ModeSocket {
			return &criEndpoint{Endpoint: "unix://" + p, Socket: p, Source: "autodetected"}, nil
		}
	}
	return nil, &criNoEndpointError{tried: tried}
}

// criParseEndpoint accepts "unix:///path" or a bare socket path.
func criParseEndpoint(value, source string) (*criEndpoint, error) {
	path := value
	if scheme, rest, ok := strings.Cut(value, "://"); ok {
		if scheme != "unix" {
			return nil, fmt.Errorf("endpoint %q from %s: only unix:// sockets are supported", value, source)
		}
		path = rest
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("endpoint %q from %s: want unix:///absolute/path.sock", value, source)
	}
	return &criEndpoint{Endpoint: "unix://" + path, Socket: path, Source: source}, nil
}

// criRealPath resolves the symbolic links of the longest existing prefix
// of path.
func criRealPath(path string) string {
	dir, rest := path, ""
	for dir != "/" && dir != "." {
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			return filepath.Join(real, rest)
		}
		dir, rest = filepath.Dir(dir), filepath.Join(filepath.Base(dir), rest)
	}
	return path
}
