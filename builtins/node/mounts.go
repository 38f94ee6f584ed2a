package node

// Mount is one line of /proc/PID/mountinfo.
type Mount struct {
	// ID is the mount id.
	ID int `json:"id"`
	// ParentID is the parent mount's id.
	ParentID int `json:"parent_id"`
	// MajorMinor is the device, "major:minor".
	MajorMinor string `json:"major_minor"`
	// Root is the directory of the file system mounted.
	Root string `json:"root"`
	// MountPoint is where it is mounted, relative to the process's root.
	MountPoint string `json:"mount_point"`
	// Options are the per-mount options, e.g. "rw,relatime".
	Options string `json:"options"`
	// Optional are the optional fields, e.g. ["shared:1"].
	Optional []string `json:"optional"`
	// FSType is the file system type, e.g. "overlay".
	FSType string `json:"fstype"`
	// Source is the mount source, e.g. "/dev/sda1" or "overlay".
	Source string `json:"source"`
	// SuperOptions are the per-superblock options.
	SuperOptions string `json:"super_options"`
}

// MountsResult lists a process's mounts.
type MountsResult struct {
	// PID is the process.
	PID int `json:"pid"`
	// Mounts are in mountinfo order.
	Mounts []Mount `json:"mounts"`
}

// Mounts is mounts: a process's mounts.
var Mounts = procRow[MountsResult]("mounts",
	`mounts lists a process's mounts (its /proc/PID/mountinfo): what the container
has mounted where, with options — configuration volumes, subPath mounts,
read-only file systems.`,
	`pid: the process
mounts: in mountinfo order, each with id, parent_id, major_minor, root, mount_point, options, optional, fstype, source, super_options`)
