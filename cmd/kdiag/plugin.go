package main

import (
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// displayName is how help names the command: "kubectl kdiag" when the
// binary is the kubectl plugin kubectl-kdiag (as krew installs it), else
// "kdiag".
func displayName(arg0 string) string {
	base := strings.TrimSuffix(filepath.Base(arg0), ".exe")
	if strings.HasPrefix(base, "kubectl-") {
		return "kubectl " + strings.ReplaceAll(strings.TrimPrefix(base, "kubectl-"), "_", "-")
	}
	return "kdiag"
}

// asPlugin makes help, usage lines and examples read name (e.g. "kubectl
// kdiag") instead of kdiag.
func asPlugin(root *cobra.Command, name string) {
	if root.Annotations == nil {
		root.Annotations = map[string]string{}
	}
	root.Annotations[cobra.CommandDisplayNameAnnotation] = name
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.Example = strings.ReplaceAll(c.Example, "  kdiag ", "  "+name+" ")
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
