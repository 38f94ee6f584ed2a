package engine

// Describe loads a runbook without running it (Load) and returns its
// metadata, including the built-ins its files mention, grouped by effect.
func Describe(path string, opts Options) (*Runbook, error) {
	p, err := Load(path, opts)
	if p == nil {
		return nil, err
	}
	return p.Runbook, err
}
