//go:build linux

package node_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
)

func TestListDirShowsTheContainersFiles(t *testing.T) {
	tg, h := start(t, nodetest.Options{})
	r := must[*node.ListDirResult](t, "list_dir", engine.Args{"path": "/opt/config", "ns": h})
	got := map[string]node.FileInfo{}
	for _, e := range r.Entries {
		got[e.Name] = e
	}
	if len(r.Entries) != 3 || got["config.toml"].Type != "file" || got["config.toml"].Size != int64(len("[default]\n")) ||
		got["additional_file"].Type != "file" || got["current.toml"].Type != "symlink" ||
		got["current.toml"].LinkTarget != "/opt/config/config.toml" || got["config.toml"].Mode != "0644" {
		t.Fatalf("list_dir /opt/config = %+v", r.Entries)
	}
	// The node's own /opt/config is not the container's.
	if _, err := os.Stat("/opt/config/additional_file"); err == nil {
		t.Skip("the node itself has /opt/config/additional_file; the isolation check is meaningless here")
	}
	_, err := call(t, "list_dir", engine.Args{"path": "/opt/config/config.toml", "pid": int64(tg.PID)})
	wantErr(t, err, engine.KindInvalid, "list_dir: /opt/config/config.toml is not a directory")
	_, err = call(t, "list_dir", engine.Args{"path": "/nope", "pid": int64(tg.PID)})
	wantErr(t, err, engine.KindNotFound, "list_dir: /nope: no such file or directory in the root of process")
}

func TestReadFileResolvesInsideTheContainer(t *testing.T) {
	tg, h := start(t, nodetest.Options{})
	r := must[*node.ReadFileResult](t, "read_file", engine.Args{"path": "/opt/config/config.toml", "ns": h})
	if !r.Exists || r.Content != "[default]\n" || r.Truncated || r.Binary {
		t.Fatalf("read_file config.toml = %+v", r)
	}
	// current.toml links to the absolute /opt/config/config.toml. Followed
	// from the node through /proc/PID/root the link escapes to the node's
	// /opt; resolved inside the container's root it finds the file.
	if _, err := os.ReadFile(tg.Path("/opt/config/current.toml")); err == nil {
		t.Skip("the node has its own /opt/config/config.toml; cannot tell where the link resolved")
	}
	link := must[*node.ReadFileResult](t, "read_file", engine.Args{"path": "/opt/config/current.toml", "pid": int64(tg.PID)})
	if link.Content != "[default]\n" {
		t.Errorf("read_file through an absolute symlink = %q", link.Content)
	}
	// ".." stops at the container's root.
	up := must[*node.ReadFileResult](t, "read_file", engine.Args{"path": "../../../../opt/config/config.toml", "pid": int64(tg.PID)})
	if up.Content != "[default]\n" {
		t.Errorf("read_file with .. above the root = %q", up.Content)
	}
	cut := must[*node.ReadFileResult](t, "read_file", engine.Args{"path": "/opt/config/config.toml", "pid": int64(tg.PID), "max_bytes": int64(4)})
	if cut.Content != "[def" || !cut.Truncated || cut.Size != 10 {
		t.Errorf("read_file max_bytes=4 = %+v", cut)
	}
	_, err := call(t, "read_file", engine.Args{"path": "/opt/config/missing.toml", "pid": int64(tg.PID)})
	wantErr(t, err, engine.KindNotFound, "read_file: /opt/config/missing.toml: no such file")
	m := must[*node.ReadFileResult](t, "read_file", engine.Args{"path": "/opt/config/missing.toml", "pid": int64(tg.PID), "missing_ok": true})
	if m.Exists {
		t.Errorf("missing_ok read of a missing file: %+v", m)
	}
	_, err = call(t, "read_file", engine.Args{"path": "/opt/config", "pid": int64(tg.PID)})
	wantErr(t, err, engine.KindInvalid, "read_file: /opt/config is a dir, not a regular file; use list_dir")
	// A magic link would lead out of the container: refused.
	_, err = call(t, "read_file", engine.Args{"path": "/proc/1/root/etc/hostname", "pid": int64(tg.PID)})
	wantErr(t, err, engine.KindInvalid, "too many levels of symbolic links")
}

func TestStat(t *testing.T) {
	tg, _ := start(t, nodetest.Options{})
	pid := int64(tg.PID)
	l := must[*node.StatResult](t, "stat", engine.Args{"path": "/opt/config/current.toml", "pid": pid})
	if !l.Exists || l.Type != "symlink" || l.LinkTarget != "/opt/config/config.toml" || l.Name != "current.toml" {
		t.Errorf("stat of the symlink = %+v", l)
	}
	f := must[*node.StatResult](t, "stat", engine.Args{"path": "/opt/config/current.toml", "pid": pid, "follow": true})
	if f.Type != "file" || f.Size != 10 || f.Inode == 0 {
		t.Errorf("stat follow=True = %+v", f)
	}
	d := must[*node.StatResult](t, "stat", engine.Args{"path": "/opt/config", "pid": pid})
	if d.Type != "dir" || d.Mode != "0755" {
		t.Errorf("stat of the directory = %+v", d)
	}
	m := must[*node.StatResult](t, "stat", engine.Args{"path": "/opt/config/additional_file", "pid": pid, "missing_ok": true})
	if !m.Exists || m.Size != 0 {
		t.Errorf("stat additional_file = %+v", m)
	}
	if err := tg.RemoveFile(); err != nil {
		t.Fatal(err)
	}
	m = must[*node.StatResult](t, "stat", engine.Args{"path": "/opt/config/additional_file", "pid": pid, "missing_ok": true})
	if m.Exists {
		t.Errorf("stat of the removed file = %+v", m)
	}
}

func TestPSShowsTheContainersProcesses(t *testing.T) {
	tg, h := start(t, nodetest.Options{})
	r := must[*node.PSResult](t, "ps", engine.Args{"ns": h})
	if len(r.Processes) != 1 {
		t.Fatalf("ps = %+v, want the app alone", r.Processes)
	}
	p := r.Processes[0]
	if p.PID != tg.PID || p.NSPID != 1 || p.User != "root" || !strings.HasPrefix(p.Comm, "broken-app") ||
		!strings.Contains(p.Cmdline, "--addr :3000") || p.Threads < 1 || p.State == "" {
		t.Errorf("ps: %+v", p)
	}
	if r.PIDNamespace != h["inodes"].(map[string]any)["pid"] {
		t.Errorf("pid_namespace %q, handle %v", r.PIDNamespace, h["inodes"])
	}
}

func TestSocketsShowTheListener(t *testing.T) {
	tg, h := start(t, nodetest.Options{})
	r := must[*node.SocketsResult](t, "sockets", engine.Args{"ns": h})
	var listen *node.Socket
	for i, s := range r.Sockets {
		if s.State == "LISTEN" && s.LocalPort == 3000 {
			listen = &r.Sockets[i]
		}
	}
	if listen == nil || len(listen.FDs) != 1 || listen.Inode == 0 {
		t.Fatalf("no LISTEN socket on :3000 owned by the app: %+v", r.Sockets)
	}
	files := must[*node.OpenFilesResult](t, "open_files", engine.Args{"pid": int64(tg.PID)})
	var owner *node.OpenFile
	for i, f := range files.Files {
		if f.FD == listen.FDs[0] {
			owner = &files.Files[i]
		}
	}
	if owner == nil || owner.Type != "socket" || !strings.Contains(owner.Target, "socket:[") {
		t.Errorf("open_files fd %d = %+v", listen.FDs[0], owner)
	}
	// The node's own sockets are not the container's.
	for _, s := range r.Sockets {
		if s.LocalIP != "0.0.0.0" && s.LocalIP != "::" && s.LocalIP != "127.0.0.1" && s.LocalIP != "::1" {
			t.Errorf("socket outside the container's loopback-only netns: %+v", s)
		}
	}
}

func TestMounts(t *testing.T) {
	tg, _ := start(t, nodetest.Options{})
	r := must[*node.MountsResult](t, "mounts", engine.Args{"pid": int64(tg.PID)})
	var fstypes = map[string]string{}
	for _, m := range r.Mounts {
		fstypes[m.MountPoint] = m.FSType
	}
	if fstypes["/opt"] != "tmpfs" || fstypes["/proc"] != "proc" {
		t.Errorf("mounts: /opt is %q, /proc is %q", fstypes["/opt"], fstypes["/proc"])
	}
}

func TestEnvironRedactsSecrets(t *testing.T) {
	tg, _ := start(t, nodetest.Options{Env: []string{"SECRET_TOKEN=hunter2", "DATABASE_URL=postgres://app:pa55@db:5432/x", "LOG_LEVEL=debug"}})
	r := must[*node.EnvironResult](t, "environ", engine.Args{"pid": int64(tg.PID)})
	if r.Env["SECRET_TOKEN"] != engine.Redacted || r.Env["LOG_LEVEL"] != "debug" ||
		r.Env["DATABASE_URL"] != "postgres://app:"+engine.Redacted+"@db:5432/x" {
		t.Errorf("environ = %v", r.Env)
	}
	if !slices.Equal(r.Redacted, []string{"DATABASE_URL", "SECRET_TOKEN"}) || !slices.Contains(r.Names, "PATH") {
		t.Errorf("redacted %v names %v", r.Redacted, r.Names)
	}
}
