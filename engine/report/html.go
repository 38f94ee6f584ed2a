package report

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"math"
	"strings"
)

//go:embed templates/report.html
var htmlFS embed.FS

var htmlTemplates = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"seconds": seconds,
	"mark":    mark,
	"pretty":  prettyJSON,
	"upper":   strings.ToUpper,
}).ParseFS(htmlFS, "templates/report.html"))

// HTMLStyle is the style sheet of the HTML report view, for pages that
// embed HTMLView (kdiag serve's run page).
var HTMLStyle = func() template.CSS {
	var b bytes.Buffer
	if err := htmlTemplates.ExecuteTemplate(&b, "style", nil); err != nil {
		panic(err)
	}
	return template.CSS(b.String())
}()

// HTMLView renders the report's view (verdict, findings, changes, the
// timeline of steps and calls, expandable evidence and steps) as an HTML
// fragment; everything the runbook or workload wrote is escaped.
func HTMLView(r *Report) (template.HTML, error) {
	var b bytes.Buffer
	if err := htmlTemplates.ExecuteTemplate(&b, "view", newHTMLData(r)); err != nil {
		return "", err
	}
	return template.HTML(b.String()), nil
}

// html writes the report as one self-contained page: inline style and
// SVG, no script, and a Content-Security-Policy that forbids loading
// anything.
func html(w io.Writer, r *Report) error {
	return htmlTemplates.ExecuteTemplate(w, "report.html", newHTMLData(r))
}

// htmlData is the report with the timeline's geometry.
type htmlData struct {
	*Report
	Timeline timeline
}

// timeline is an SVG chart: a row per step, a bar per call placed at
// at_ms, as long as duration_ms.
type timeline struct {
	Width, Height, LabelWidth float64
	TotalMS                   float64
	Rows                      []timelineRow
	Bars                      []timelineBar
	Ticks                     []timelineTick
}

type timelineRow struct {
	Y     float64
	Label string
}

type timelineBar struct {
	X, Y, W float64
	Seq     int
	Class   string
	Title   string
}

type timelineTick struct {
	X      float64
	Label  string
	Anchor string
}

const (
	tlWidth = 900.0
	tlLabel = 220.0
	tlRow   = 22.0
)

func newHTMLData(r *Report) htmlData {
	total := r.DurationMS
	for _, s := range r.Steps {
		for _, c := range s.Calls {
			total = math.Max(total, c.AtMS+c.DurationMS)
		}
	}
	if total <= 0 {
		total = 1
	}
	tl := timeline{Width: tlWidth, LabelWidth: tlLabel, TotalMS: total}
	scale := (tlWidth - tlLabel - 10) / total
	for i, s := range r.Steps {
		y := 20 + float64(i)*tlRow
		name := s.Name
		if name == "" {
			name = "(outside any step)"
		}
		tl.Rows = append(tl.Rows, timelineRow{Y: y, Label: mark(s.Status) + " " + name})
		for _, c := range s.Calls {
			class := "call"
			if c.Error != "" {
				class = "call failed"
			}
			tl.Bars = append(tl.Bars, timelineBar{
				X: tlLabel + c.AtMS*scale, Y: y + 3, W: math.Max(2, c.DurationMS*scale), Seq: c.Seq, Class: class,
				Title: fmt.Sprintf("#%d %s at %s for %s", c.Seq, c.Builtin, seconds(c.AtMS), seconds(c.DurationMS)),
			})
		}
	}
	tl.Height = 30 + float64(len(r.Steps))*tlRow
	for i := 0; i <= 4; i++ {
		ms := total * float64(i) / 4
		anchor := map[int]string{0: "start", 4: "end"}[i]
		if anchor == "" {
			anchor = "middle"
		}
		tl.Ticks = append(tl.Ticks, timelineTick{X: tlLabel + ms*scale, Label: seconds(ms), Anchor: anchor})
	}
	return htmlData{Report: r, Timeline: tl}
}

// prettyJSON indents raw JSON for an expanded view.
func prettyJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Indent(&b, UnescapeHTML(raw), "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
