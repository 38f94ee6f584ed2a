//go:build linux

package node

import (
	"bytes"
	"context"
	"os"
	"slices"
	"sort"
	"strings"
)

func init() {
	Environ.Linux = localEnviron
}

// localEnviron reads /proc/PID/environ and redacts secret-looking values.
func localEnviron(ctx context.Context, req *ProcRequest) (*EnvironResult, error) {
	t := &req.Target
	if err := checkTarget("environ", t); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(procPath(t.PID, "environ"))
	if err != nil {
		return nil, procErr("environ", t.PID, err)
	}
	res := &EnvironResult{PID: t.PID, Env: map[string]string{}, Names: []string{}, Redacted: []string{}}
	for _, kv := range bytes.Split(b, []byte{0}) {
		name, value, ok := strings.Cut(string(kv), "=")
		if !ok || name == "" {
			continue
		}
		if _, dup := res.Env[name]; !dup {
			res.Names = append(res.Names, name)
		}
		v, redacted := redactEnv(name, value)
		res.Env[name] = v
		if redacted && !slices.Contains(res.Redacted, name) {
			res.Redacted = append(res.Redacted, name)
		}
	}
	sort.Strings(res.Redacted)
	return res, nil
}
