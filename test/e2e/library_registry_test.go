package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kdiag/kdiag/test/harness"
)

// libraryRegistryAddr is where examples/image-pull/registry.yml listens.
const libraryRegistryAddr = "127.0.0.1:35017"

// libraryRegistry starts a real anonymous registry (Debian's
// docker-registry, distribution 2.8) with examples/image-pull/registry.yml
// and an empty storage directory, and pushes repository shop/orders-api
// with tags v1 and v2. It stops the registry when the test ends.
func libraryRegistry(t *testing.T) {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry is not installed (apt-get install docker-registry; .ci/run installs it): %v", err)
	}
	root, err := harness.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", filepath.Join(root, "examples/image-pull/registry.yml"))
	cmd.Env = append(os.Environ(), "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY="+t.TempDir())
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + libraryRegistryAddr + "/v2/"
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry on %s did not start: %v\n%s", libraryRegistryAddr, err, logs.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, tag := range []string{"v1", "v2"} {
		if err := registryPush(base, "shop/orders-api", tag); err != nil {
			t.Fatalf("push shop/orders-api:%s: %v\n%s", tag, err, logs.String())
		}
	}
	if err := registryPushIndex(base, "shop/orders-arm", "v1", "arm64"); err != nil {
		t.Fatalf("push shop/orders-arm:v1: %v\n%s", err, logs.String())
	}
}

// registryPushIndex pushes an image index whose only variant is for
// linux/ARCH (an image manifest with no layers, pushed by digest).
func registryPushIndex(base, repo, tag, arch string) error {
	config := []byte(`{"architecture":"` + arch + `","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`)
	cd, err := registryBlob(base, repo, config)
	if err != nil {
		return err
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
		"layers":        []any{},
	})
	sum := sha256.Sum256(manifest)
	md := "sha256:" + hex.EncodeToString(sum[:])
	if err := registryPut(base+repo+"/manifests/"+md, "application/vnd.oci.image.manifest.v1+json", manifest); err != nil {
		return err
	}
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(manifest),
			"platform": map[string]any{"architecture": arch, "os": "linux"}}},
	})
	return registryPut(base+repo+"/manifests/"+tag, "application/vnd.oci.image.index.v1+json", index)
}

// registryBlob uploads a blob in one request and returns its digest.
func registryBlob(base, repo string, data []byte) (string, error) {
	sum := sha256.Sum256(data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	resp, err := http.Post(base+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		return "", fmt.Errorf("start upload: %s", resp.Status)
	}
	if loc[0] == '/' {
		loc = "http://" + libraryRegistryAddr + loc
	}
	sep := "?"
	if bytes.ContainsRune([]byte(loc), '?') {
		sep = "&"
	}
	return digest, registryPut(loc+sep+"digest="+digest, "application/octet-stream", data)
}

// registryPut PUTs a body and wants 201 Created.
func registryPut(url, ctype string, body []byte) error {
	req, _ := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", ctype)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put %s: %s", url, resp.Status)
	}
	return nil
}

// registryPush uploads a config blob and an image manifest (no layers)
// through the registry's HTTP API.
func registryPush(base, repo, tag string) error {
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`)
	sum := sha256.Sum256(config)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	resp, err := http.Post(base+repo+"/blobs/uploads/", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusAccepted || loc == "" {
		return fmt.Errorf("start upload: %s", resp.Status)
	}
	if loc[0] == '/' {
		loc = "http://" + libraryRegistryAddr + loc
	}
	sep := "?"
	if bytes.ContainsRune([]byte(loc), '?') {
		sep = "&"
	}
	req, _ := http.NewRequest(http.MethodPut, loc+sep+"digest="+digest, bytes.NewReader(config))
	req.Header.Set("Content-Type", "application/octet-stream")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("upload config: %s", resp.Status)
	}
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.manifest.v1+json",
		"config":        map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)},
		"layers":        []any{},
	})
	req, _ = http.NewRequest(http.MethodPut, base+repo+"/manifests/"+tag, bytes.NewReader(manifest))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	if resp, err = http.DefaultClient.Do(req); err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("put manifest: %s", resp.Status)
	}
	return nil
}
