package playbook

import (
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"strings"

	"github.com/kdiag/kdiag/engine/report"
)

//go:embed templates/*.html
var templateFS embed.FS

var pageFuncs = template.FuncMap{
	"join":    func(s []string) string { return strings.Join(s, ", ") },
	"seconds": func(ms float64) string { return fmt.Sprintf("%.3fs", ms/1000) },
	"short":   func(raw json.RawMessage) string { return report.Short(raw, 300) },
}

var (
	runPage   = template.Must(template.New("run.html").Funcs(pageFuncs).ParseFS(templateFS, "templates/run.html"))
	setPage   = template.Must(template.New("set.html").Funcs(pageFuncs).ParseFS(templateFS, "templates/set.html"))
	indexPage = template.Must(template.New("index.html").Funcs(pageFuncs).ParseFS(templateFS, "templates/index.html"))
)

// pageData is what the run page shows: the run's metadata and the
// report's HTML view (the same as kdiag report -o html shows).
type pageData struct {
	Meta   *Meta
	Report *report.Report
	View   template.HTML
	Style  template.CSS
	// Pod, on the page of one pod of a fan-out run, is the pod's name.
	Pod string
}
