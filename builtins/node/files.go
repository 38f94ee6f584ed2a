package node

import (
	"context"
	"time"

	"github.com/kdiag/kdiag/engine"
)

// defaultMaxBytes is read_file's default cap.
const defaultMaxBytes = 64 << 10

// MaxReadBytes is the most read_file's max_bytes may ask for: a result
// is held in memory, recorded in the transcript and rendered in reports.
const MaxReadBytes = 16 << 20

// FileRequest names a path as a target process sees it.
type FileRequest struct {
	// Target is the process whose root the path is below.
	Target Target `json:"target"`
	// Path is the path inside the target's root.
	Path string `json:"path"`
	// MaxBytes caps read_file's content.
	MaxBytes int64 `json:"max_bytes,omitempty"`
	// MissingOK turns "no such file" into a result with Exists false.
	MissingOK bool `json:"missing_ok,omitempty"`
	// Follow makes stat describe what a final symbolic link points to.
	Follow bool `json:"follow,omitempty"`
}

// FileInfo describes one file.
type FileInfo struct {
	// Name is the file's base name.
	Name string `json:"name"`
	// Type is file, dir, symlink, fifo, socket, char_device or block_device.
	Type string `json:"type"`
	// Size is the size in bytes.
	Size int64 `json:"size"`
	// Mode is the permission bits in octal, e.g. "0644".
	Mode string `json:"mode"`
	// MTime is the modification time, RFC 3339 in UTC.
	MTime string `json:"mtime"`
	// UID is the owner's user id.
	UID int `json:"uid"`
	// GID is the owner's group id.
	GID int `json:"gid"`
	// LinkTarget is a symbolic link's target, as written in the link.
	LinkTarget string `json:"link_target"`
}

// ReadFileResult is a file's content.
type ReadFileResult struct {
	// Path is the path asked for.
	Path string `json:"path"`
	// Exists is false only with MissingOK and no such file.
	Exists bool `json:"exists"`
	// Size is the file's size.
	Size int64 `json:"size"`
	// Content is the file's content up to MaxBytes, when it is UTF-8.
	Content string `json:"content"`
	// ContentBase64 is the content in base64 when it is not UTF-8.
	ContentBase64 string `json:"content_base64"`
	// Binary reports that the content is not UTF-8 text.
	Binary bool `json:"binary"`
	// Truncated reports that the file is longer than MaxBytes.
	Truncated bool `json:"truncated"`
}

// ListDirResult is a directory's entries.
type ListDirResult struct {
	// Path is the path asked for.
	Path string `json:"path"`
	// Exists is false only with MissingOK and no such directory.
	Exists bool `json:"exists"`
	// Entries are the directory's entries, sorted by name.
	Entries []FileInfo `json:"entries"`
	// Truncated reports that only the first 10000 entries are listed.
	Truncated bool `json:"truncated"`
}

// StatResult describes one path.
type StatResult struct {
	FileInfo
	// Path is the path asked for.
	Path string `json:"path"`
	// Exists is false only with MissingOK and no such file.
	Exists bool `json:"exists"`
	// Inode is the file's inode number.
	Inode uint64 `json:"inode"`
}

func fileParams(extra ...engine.Param) []engine.Param {
	ps := []engine.Param{{Name: "path", Type: "string", Required: true, Doc: "path inside the container, e.g. /opt/config"}}
	ps = append(ps, targetParams()...)
	ps = append(ps, extra...)
	return append(ps, engine.Param{Name: "missing_ok", Type: "bool", Default: false, Doc: "return exists=False instead of failing when there is no such file"})
}

func fileRequest(builtin string, a engine.Args) (*FileRequest, error) {
	t, err := targetArg(builtin, a, true)
	if err != nil {
		return nil, err
	}
	p := a.String("path")
	if p == "" {
		return nil, engine.Errorf(engine.KindInvalid, "%s: path is empty", builtin)
	}
	return &FileRequest{Target: *t, Path: p, MissingOK: a.Bool("missing_ok")}, nil
}

const fileInfoDoc = `type: file, dir, symlink, fifo, socket, char_device or block_device
size: size in bytes
mode: permission bits in octal, e.g. "0644"
mtime: modification time, RFC 3339 UTC
uid: owner user id
gid: owner group id
link_target: a symbolic link's target, as written`

// ReadFile is read_file: a file as a container sees it.
var ReadFile = fileRow[ReadFileResult]("read_file", readFileSpec)

// ListDir is list_dir: a directory as a container sees it.
var ListDir = fileRow[ListDirResult]("list_dir", listDirSpec)

// Stat is stat: a file's metadata as a container sees it.
var Stat = fileRow[StatResult]("stat", statSpec)

// fileRow declares a built-in about a file below a process's root.
func fileRow[Res any](name string, declare func(func(context.Context, *FileRequest) (*Res, error)) *engine.Spec) *Row[FileRequest, Res] {
	return &Row[FileRequest, Res]{Builtin: name, Declare: declare, Target: func(r *FileRequest) int { return r.Target.PID }}
}

func readFileSpec(send func(context.Context, *FileRequest) (*ReadFileResult, error)) *engine.Spec {
	return &engine.Spec{
		Name: "read_file",
		Doc: `read_file reads a file as the container of a process sees it, without entering any
namespace: the path and every symbolic link on it resolve inside the
process's root (/proc/PID/root), so "/etc/app.conf" is the container's even
when it is a link to an absolute path. Fails with kind "not_found" when
there is no such file, unless missing_ok=True. Content that is not UTF-8
comes as content_base64.`,
		Params: fileParams(engine.Param{Name: "max_bytes", Type: "int", Default: int64(defaultMaxBytes), Doc: "read at most this many bytes"}),
		Result: `path: the path asked for
exists: False only with missing_ok=True and no such file
size: the file's size
content: the content up to max_bytes, when it is UTF-8
content_base64: the content in base64 when it is not UTF-8
binary: the content is not UTF-8
truncated: the file is longer than max_bytes`,
		Effect:  engine.Read,
		Timeout: 10 * time.Second,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			req, err := fileRequest("read_file", c.Args)
			if err != nil {
				return nil, err
			}
			req.MaxBytes = c.Args.Int("max_bytes")
			if req.MaxBytes <= 0 {
				return nil, engine.Errorf(engine.KindInvalid, "read_file: max_bytes must be positive, got %d", req.MaxBytes)
			}
			if req.MaxBytes > MaxReadBytes {
				return nil, engine.Errorf(engine.KindInvalid, "read_file: max_bytes %d is over the limit of %d (16 MiB); read less (the result is kept in memory and in the transcript)", req.MaxBytes, MaxReadBytes)
			}
			return send(ctx, req)
		},
	}
}

func listDirSpec(send func(context.Context, *FileRequest) (*ListDirResult, error)) *engine.Spec {
	return &engine.Spec{
		Name: "list_dir",
		Doc: `list_dir lists a directory as the container of a process sees it (like ls -la
inside it), resolving the path inside the process's root. Fails with kind
"not_found" when there is no such directory, unless missing_ok=True.`,
		Params: fileParams(),
		Result: `path: the path asked for
exists: False only with missing_ok=True and no such directory
entries: the entries sorted by name, each with name, ` + fileInfoDoc + `
truncated: only the first 10000 entries are listed`,
		Effect:  engine.Read,
		Timeout: 10 * time.Second,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			req, err := fileRequest("list_dir", c.Args)
			if err != nil {
				return nil, err
			}
			return send(ctx, req)
		},
	}
}

func statSpec(send func(context.Context, *FileRequest) (*StatResult, error)) *engine.Spec {
	return &engine.Spec{
		Name: "stat",
		Doc: `stat describes a file as the container of a process sees it, resolving the
path inside the process's root. A final symbolic link is described itself
(like stat without -L) unless follow=True. Fails with kind "not_found" when
there is no such file, unless missing_ok=True.`,
		Params: fileParams(engine.Param{Name: "follow", Type: "bool", Default: false, Doc: "describe what a final symbolic link points to"}),
		Result: `path: the path asked for
exists: False only with missing_ok=True and no such file
name: base name
` + fileInfoDoc + `
inode: inode number`,
		Effect:  engine.Read,
		Timeout: 10 * time.Second,
		Run: func(ctx context.Context, c *engine.Call) (any, error) {
			req, err := fileRequest("stat", c.Args)
			if err != nil {
				return nil, err
			}
			req.Follow = c.Args.Bool("follow")
			return send(ctx, req)
		},
	}
}
