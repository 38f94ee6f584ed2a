//go:build linux

package node

import (
	"context"
	"os"
	"strconv"
	"strings"
)

func init() {
	Mounts.Linux = localMounts
}

// localMounts parses /proc/PID/mountinfo.
func localMounts(ctx context.Context, req *ProcRequest) (*MountsResult, error) {
	t := &req.Target
	if err := checkTarget("mounts", t); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(procPath(t.PID, "mountinfo"))
	if err != nil {
		return nil, procErr("mounts", t.PID, err)
	}
	return &MountsResult{PID: t.PID, Mounts: parseMountinfo(string(b))}, nil
}

// parseMountinfo parses mountinfo lines (see proc_pid_mountinfo(5)):
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(s string) []Mount {
	out := []Mount{}
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || len(f) < sep+3 {
			continue
		}
		m := Mount{
			MajorMinor: f[2],
			Root:       unescapeOctal(f[3]),
			MountPoint: unescapeOctal(f[4]),
			Options:    f[5],
			Optional:   append([]string{}, f[6:sep]...),
			FSType:     f[sep+1],
			Source:     unescapeOctal(f[sep+2]),
		}
		if len(f) > sep+3 {
			m.SuperOptions = f[sep+3]
		}
		m.ID, _ = strconv.Atoi(f[0])
		m.ParentID, _ = strconv.Atoi(f[1])
		out = append(out, m)
	}
	return out
}

// unescapeOctal undoes the kernel's \NNN escapes of space, tab, newline
// and backslash in mountinfo fields.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
