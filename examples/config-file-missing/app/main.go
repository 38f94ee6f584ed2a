// Command config-app is the config-file-missing incident's application.
//
// At start and then every --interval it looks for its configuration: the
// file --config (env CONFIG_FILE, default /etc/app/config.yaml), then the
// fallback /config/config.yaml. While neither exists it logs
//
//	config: no configuration found; retrying in 1s
//
// and keeps trying; it does not say which paths it tried (finding them is
// the diagnosis). Once a file is found it logs "config: loaded N bytes from
// PATH" and re-reads it at every interval.
//
// Build it statically with CGO_ENABLED=0 go build.
package main

import (
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	def := "/etc/app/config.yaml"
	if v := os.Getenv("CONFIG_FILE"); v != "" {
		def = v
	}
	config := flag.String("config", def, "configuration file (env CONFIG_FILE)")
	interval := flag.Duration("interval", time.Second, "how often to look for the configuration")
	flag.Parse()

	paths := []string{*config, "/config/config.yaml"}
	loaded := ""
	for {
		path, n, ok := load(paths)
		switch {
		case ok && path != loaded:
			fmt.Printf("config: loaded %d bytes from %s\n", n, path)
			loaded = path
		case !ok:
			fmt.Fprintf(os.Stderr, "config: no configuration found; retrying in %s\n", *interval)
			loaded = ""
		}
		time.Sleep(*interval)
	}
}

// load reads the first of paths that exists and returns its path and size.
func load(paths []string) (string, int, bool) {
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil {
			return p, len(b), true
		}
	}
	return "", 0, false
}
