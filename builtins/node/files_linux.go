//go:build linux

package node

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path"
	"sort"
	"unicode/utf8"

	"github.com/kdiag/kdiag/engine"
	"golang.org/x/sys/unix"
)

// maxEntries caps list_dir.
const maxEntries = 10000

func init() {
	ReadFile.Linux = localReadFile
	ListDir.Linux = localListDir
	Stat.Linux = localStat
}

// localReadFile reads a regular file below the target's root.
func localReadFile(ctx context.Context, req *FileRequest) (*ReadFileResult, error) {
	root, err := openRoot("read_file", &req.Target)
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	res := &ReadFileResult{Path: req.Path}
	fd, err := openIn(root, req.Path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		if req.MissingOK && missing(err) {
			return res, nil
		}
		return nil, fileErr("read_file", req, err)
	}
	f := os.NewFile(uintptr(fd), req.Path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fileErr("read_file", req, err)
	}
	if t := fileType(st.Mode); t != "file" {
		hint := ""
		if t == "dir" {
			hint = "; use list_dir"
		}
		return nil, engine.Errorf(engine.KindInvalid, "read_file: %s is a %s, not a regular file%s", req.Path, t, hint)
	}
	if req.MaxBytes <= 0 || req.MaxBytes > MaxReadBytes { // an agent trusts no caller
		return nil, engine.Errorf(engine.KindInvalid, "read_file: max_bytes %d is outside 1..%d", req.MaxBytes, MaxReadBytes)
	}
	b, err := io.ReadAll(io.LimitReader(f, req.MaxBytes+1))
	if err != nil {
		return nil, fileErr("read_file", req, err)
	}
	res.Exists, res.Size = true, st.Size
	if int64(len(b)) > req.MaxBytes {
		res.Truncated, b = true, b[:req.MaxBytes]
	}
	if utf8.Valid(b) {
		res.Content = string(b)
	} else {
		res.Binary, res.ContentBase64 = true, base64.StdEncoding.EncodeToString(b)
	}
	return res, nil
}

// localListDir lists a directory below the target's root.
func localListDir(ctx context.Context, req *FileRequest) (*ListDirResult, error) {
	root, err := openRoot("list_dir", &req.Target)
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	res := &ListDirResult{Path: req.Path, Entries: []FileInfo{}}
	fd, err := openIn(root, req.Path, unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, unix.ENOTDIR) {
		if pfd, perr := openIn(root, req.Path, unix.O_PATH); perr == nil {
			unix.Close(pfd)
			return nil, engine.Errorf(engine.KindInvalid, "list_dir: %s is not a directory; use stat or read_file", req.Path)
		}
	}
	if err != nil {
		if req.MissingOK && missing(err) {
			return res, nil
		}
		return nil, fileErr("list_dir", req, err)
	}
	dir := os.NewFile(uintptr(fd), req.Path)
	defer dir.Close()
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return nil, fileErr("list_dir", req, err)
	}
	sort.Strings(names)
	if len(names) > maxEntries {
		names, res.Truncated = names[:maxEntries], true
	}
	res.Exists = true
	for _, name := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue // removed meanwhile
		}
		fi := fileInfo(name, &st)
		if fi.Type == "symlink" {
			fi.LinkTarget = readlinkAt(fd, name)
		}
		res.Entries = append(res.Entries, fi)
	}
	return res, nil
}

// localStat describes a path below the target's root.
func localStat(ctx context.Context, req *FileRequest) (*StatResult, error) {
	root, err := openRoot("stat", &req.Target)
	if err != nil {
		return nil, err
	}
	defer unix.Close(root)
	res := &StatResult{Path: req.Path}
	flags := unix.O_PATH
	if !req.Follow {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := openIn(root, req.Path, flags)
	if err != nil {
		if req.MissingOK && missing(err) {
			return res, nil
		}
		return nil, fileErr("stat", req, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fileErr("stat", req, err)
	}
	res.Exists, res.Inode = true, st.Ino
	res.FileInfo = fileInfo(path.Base(req.Path), &st)
	if res.Type == "symlink" {
		res.LinkTarget = readlinkAt(fd, "")
	}
	return res, nil
}
