//go:build linux

package node

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseNetTable(t *testing.T) {
	tcp := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0BB8 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0BB8 0100007F:D431 01 00000010:00000000 00:00000000 00000000  1000        0 12346 1 0000000000000000 20 4 30 10 -1
`
	got, err := parseNetTable("tcp", tcp)
	if err != nil {
		t.Fatal(err)
	}
	want := []Socket{
		{Proto: "tcp", Local: "127.0.0.1:3000", LocalIP: "127.0.0.1", LocalPort: 3000, Remote: "0.0.0.0:0", RemoteIP: "0.0.0.0", State: "LISTEN", Inode: 12345, RxQueue: 2},
		{Proto: "tcp", Local: "127.0.0.1:3000", LocalIP: "127.0.0.1", LocalPort: 3000, Remote: "127.0.0.1:54321", RemoteIP: "127.0.0.1", RemotePort: 54321, State: "ESTABLISHED", UID: 1000, Inode: 12346, TxQueue: 16},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("tcp table (-want +got):\n%s", d)
	}
	tcp6 := `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0BB8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0016 0000000000000000FFFF00000100007F:8AC6 06 00000000:00000000 00:00000000 00000000     0        0 0 1
`
	got, err = parseNetTable("tcp6", tcp6)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].Local != "[::]:3000" || got[1].Local != "[::1]:22" || got[1].RemoteIP != "127.0.0.1" || got[1].State != "TIME_WAIT" {
		t.Errorf("tcp6 table: %+v", got)
	}
	udp := `   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 3500007F:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000   101        0 777 2 0000000000000000 0
`
	got, _ = parseNetTable("udp", udp)
	if got[0].State != "UNCONN" || got[0].Local != "127.0.0.53:53" {
		t.Errorf("udp table: %+v", got)
	}
	if _, err := parseNetTable("tcp", "header\n 0: zz:1 00000000:0000 0A 0:0 0:0 0 0 0 1\n"); err == nil {
		t.Error("malformed address accepted")
	}
}

func TestParseMountinfo(t *testing.T) {
	in := `36 35 98:0 /mnt1 /mnt\0402 rw,noatime master:1 shared:3 - ext3 /dev/root rw,errors=continue
22 1 0:21 / /proc rw,nosuid - proc proc rw
bad line
`
	want := []Mount{
		{ID: 36, ParentID: 35, MajorMinor: "98:0", Root: "/mnt1", MountPoint: "/mnt 2", Options: "rw,noatime", Optional: []string{"master:1", "shared:3"}, FSType: "ext3", Source: "/dev/root", SuperOptions: "rw,errors=continue"},
		{ID: 22, ParentID: 1, MajorMinor: "0:21", Root: "/", MountPoint: "/proc", Options: "rw,nosuid", Optional: []string{}, FSType: "proc", Source: "proc", SuperOptions: "rw"},
	}
	if d := cmp.Diff(want, parseMountinfo(in)); d != "" {
		t.Errorf("mountinfo (-want +got):\n%s", d)
	}
	if got := unescapeOctal(`a\134b\011c\`); got != "a\\b\tc\\" {
		t.Errorf("unescapeOctal = %q", got)
	}
}

func TestParseStat(t *testing.T) {
	st, err := parseStat([]byte("42 (a (weird) name) S 7 42 42 0 -1"))
	if err != nil || st.pid != 42 || st.comm != "a (weird) name" || st.state != "S" || st.ppid != 7 || st.pgrp != 42 {
		t.Errorf("parseStat = %+v, %v", st, err)
	}
	if _, err := parseStat([]byte("garbage")); err == nil {
		t.Error("garbage accepted")
	}
}
