//go:build linux

package node_test

import (
	"os"
	"testing"

	"github.com/kdiag/kdiag/builtins/node"
	"github.com/kdiag/kdiag/builtins/node/nodetest"
	"github.com/kdiag/kdiag/engine"
)

// TestReadFileCapsMaxBytes reads a 2 GiB (sparse) file in a real
// container's root: max_bytes=8G is refused before anything is read
// (it used to read the whole file into memory), and the largest allowed
// read returns MaxReadBytes, truncated.
func TestReadFileCapsMaxBytes(t *testing.T) {
	tg, h := start(t, nodetest.Options{})
	if err := os.Truncate(tg.Path("/opt/config/huge.log"), 2<<30); err != nil {
		f, ferr := os.Create(tg.Path("/opt/config/huge.log"))
		if ferr != nil {
			t.Fatal(ferr)
		}
		f.Truncate(2 << 30)
		f.Close()
	}
	_, err := call(t, "read_file", engine.Args{"path": "/opt/config/huge.log", "ns": h, "max_bytes": int64(8 << 30)})
	wantErr(t, err, engine.KindInvalid, "read_file: max_bytes 8589934592 is over the limit of 16777216")
	r := must[*node.ReadFileResult](t, "read_file", engine.Args{"path": "/opt/config/huge.log", "ns": h, "max_bytes": int64(node.MaxReadBytes)})
	if !r.Truncated || r.Size != 2<<30 {
		t.Errorf("read at the cap: truncated %v size %d", r.Truncated, r.Size)
	}
}
