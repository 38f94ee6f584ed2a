package node

import "github.com/kdiag/kdiag/engine"

// Ops returns the table of node operations, in the order of their
// documentation. A new node built-in is a Row in a file of its own and
// one line here (see CONTRIBUTING.md, "Adding a built-in").
func Ops() []Op {
	return []Op{
		EnterNS,
		Run,
		HTTPProbe,
		TCPProbe,
		ReadFile,
		ListDir,
		Stat,
		PS,
		OpenFiles,
		Sockets,
		UnixSockets,
		Mounts,
		Environ,
	}
}

// Specs returns the node built-ins, served by this machine (Local).
func Specs() []*engine.Spec { return SpecsFor(Local{}) }

// SpecsFor returns the node built-ins, served by x.
func SpecsFor(x Executor) []*engine.Spec {
	ops := Ops()
	specs := make([]*engine.Spec, len(ops))
	for i, op := range ops {
		specs[i] = op.Spec(x)
	}
	return specs
}
