package node

import "github.com/kdiag/kdiag/engine"

// Specs returns the node built-ins, served by this node (Local).
func Specs() []*engine.Spec { return SpecsFor(Local{}) }

// SpecsFor returns the node built-ins, served by x.
func SpecsFor(x Executor) []*engine.Spec {
	return []*engine.Spec{
		enterNSSpec(x),
		runSpec(x),
		httpProbeSpec(x),
		tcpProbeSpec(x),
		readFileSpec(x),
		listDirSpec(x),
		statSpec(x),
		psSpec(x),
		openFilesSpec(x),
		socketsSpec(x),
		mountsSpec(x),
		environSpec(x),
	}
}
