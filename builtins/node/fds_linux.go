//go:build linux

package node

import (
	"context"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxFDs caps open_files.
const maxFDs = 10000

func init() {
	OpenFiles.Linux = localOpenFiles
}

// localOpenFiles lists /proc/PID/fd with the offsets and flags of fdinfo.
func localOpenFiles(ctx context.Context, req *ProcRequest) (*OpenFilesResult, error) {
	t := &req.Target
	if err := checkTarget("open_files", t); err != nil {
		return nil, err
	}
	fds, err := listFDs(t.PID)
	if err != nil {
		return nil, procErr("open_files", t.PID, err)
	}
	res := &OpenFilesResult{PID: t.PID, Files: []OpenFile{}}
	for _, fd := range fds[:min(len(fds), maxFDs)] {
		dir := procPath(t.PID, "fd/"+strconv.Itoa(fd))
		target, err := os.Readlink(dir)
		if err != nil {
			continue // closed meanwhile
		}
		f := OpenFile{FD: fd, Target: target, Type: fdType(dir, target)}
		if strings.HasSuffix(target, " (deleted)") {
			f.Deleted = true
		}
		info, _ := os.ReadFile(procPath(t.PID, "fdinfo/"+strconv.Itoa(fd)))
		s := parseStatus(info)
		f.Flags = s["flags"]
		f.Pos, _ = strconv.ParseInt(s["pos"], 10, 64)
		res.Files = append(res.Files, f)
	}
	return res, nil
}

// fdType classifies a descriptor by its link text, or by what it points to.
func fdType(link, target string) string {
	switch {
	case strings.HasPrefix(target, "socket:["):
		return "socket"
	case strings.HasPrefix(target, "pipe:["):
		return "pipe"
	case strings.HasPrefix(target, "anon_inode:"):
		return "anon_inode"
	}
	var st unix.Stat_t
	if unix.Stat(link, &st) != nil {
		return "file"
	}
	return fileType(st.Mode)
}
