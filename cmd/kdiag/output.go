package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
	"sigs.k8s.io/yaml"
)

// The -o values, the same words for every command that has them.
var (
	reportOutputs = []string{"text", "markdown", "json", "yaml", "html"}
	dataOutputs   = []string{"text", "json", "yaml"}
)

// outputFlag is an -o value checked against the command's formats when
// the flag is parsed: an unknown one is a usage error (exit 2).
type outputFlag struct {
	value   string
	allowed []string
}

func (o *outputFlag) String() string { return o.value }
func (o *outputFlag) Type() string   { return "string" }
func (o *outputFlag) Set(s string) error {
	if s == "md" && slices.Contains(o.allowed, "markdown") {
		s = "markdown"
	}
	if !slices.Contains(o.allowed, s) {
		return fmt.Errorf("want %s", orList(o.allowed))
	}
	o.value = s
	return nil
}

// addOutputFlag adds -o, --output with the given formats (the first is the
// default) and completes them.
func addOutputFlag(cmd *cobra.Command, allowed []string) *outputFlag {
	o := &outputFlag{value: allowed[0], allowed: allowed}
	cmd.Flags().VarP(o, "output", "o", "output format: "+orList(allowed))
	cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(allowed, cobra.ShellCompDirectiveNoFileComp))
	return o
}

// orList renders "a, b or c".
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// writeData writes v as indented JSON (no HTML escaping) or YAML.
func writeData(w io.Writer, format string, v any) error {
	if format == "yaml" {
		b, err := yaml.Marshal(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// colorFlag is --color: auto (on a terminal, unless $NO_COLOR is set or
// TERM=dumb), always or never.
type colorFlag string

func (c *colorFlag) String() string {
	if *c == "" {
		return "auto"
	}
	return string(*c)
}
func (c *colorFlag) Type() string { return "string" }
func (c *colorFlag) Set(s string) error {
	switch s {
	case "auto", "always", "never":
		*c = colorFlag(s)
		return nil
	}
	return fmt.Errorf("want auto, always or never")
}

// enabled says whether output to w is coloured.
func (c colorFlag) enabled(w io.Writer) bool {
	switch c {
	case "always":
		return true
	case "never":
		return false
	}
	if envNoColour() {
		return false
	}
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
