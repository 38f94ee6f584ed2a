package runbooks

import (
	"embed"
	"encoding/json"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// casesFS holds what each recording of the library concludes, as kdiag
// test replays it (testdata/RUNBOOK/CASE.expect.json).
//
//go:embed testdata/*/*.expect.json
var casesFS embed.FS

// Case is one recording of a library runbook and its verdict.
type Case struct {
	Runbook string
	Name    string
	Verdict string
}

// Cases returns every recorded case of the library, by runbook and name.
func Cases() ([]Case, error) {
	files, err := fs.Glob(casesFS, "testdata/*/*.expect.json")
	if err != nil {
		return nil, err
	}
	var out []Case
	for _, f := range files {
		b, err := casesFS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var e struct {
			Verdict string `json:"verdict"`
		}
		if err := json.Unmarshal(b, &e); err != nil {
			return nil, err
		}
		out = append(out, Case{Runbook: path.Base(path.Dir(f)), Name: strings.TrimSuffix(path.Base(f), ".expect.json"), Verdict: e.Verdict})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Runbook != out[j].Runbook {
			return out[i].Runbook < out[j].Runbook
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}
