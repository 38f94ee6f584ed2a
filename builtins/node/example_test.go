package node_test

import (
	"fmt"

	"github.com/kdiag/kdiag/builtins/node"
)

// The node built-ins, as a runbook calls them.
func ExampleSpecs() {
	for _, s := range node.Specs() {
		fmt.Println(s.Name, s.Effect)
	}
	// Output:
	// enter_ns read
	// run read
	// http_probe read
	// tcp_probe read
	// read_file read
	// list_dir read
	// stat read
	// ps read
	// open_files read
	// sockets read
	// unix_sockets read
	// mounts read
	// environ read
}
