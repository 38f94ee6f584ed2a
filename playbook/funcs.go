package playbook

import (
	"fmt"
	htmltemplate "html/template"
	"net/url"
	"regexp"
	"strings"
	"text/template"
	"time"

	"golang.org/x/text/cases"
	"golang.org/x/text/language"
)

// templateFuncs are Alertmanager's template functions, so that a route's
// params can be written as in Alertmanager's notification templates
// (https://prometheus.io/docs/alerting/latest/notifications/#functions):
// toUpper, toLower, title, trimSpace, join, match, reReplaceAll, safeHtml,
// safeUrl, urlUnescape, stringSlice, date, tz, since and humanizeDuration.
// A bad regular expression is an error, not a panic.
var templateFuncs = template.FuncMap{
	"toUpper":   strings.ToUpper,
	"toLower":   strings.ToLower,
	"title":     func(s string) string { return cases.Title(language.AmericanEnglish).String(s) },
	"trimSpace": strings.TrimSpace,
	// join is Alertmanager's: the separator first.
	"join": func(sep string, s []string) string { return strings.Join(s, sep) },
	"match": func(pattern, s string) (bool, error) {
		return regexp.MatchString(pattern, s)
	},
	"reReplaceAll": func(pattern, repl, text string) (string, error) {
		re, err := regexp.Compile(pattern)
		if err != nil {
			return "", err
		}
		return re.ReplaceAllString(text, repl), nil
	},
	"safeHtml":    func(s string) htmltemplate.HTML { return htmltemplate.HTML(s) },
	"safeUrl":     func(s string) htmltemplate.URL { return htmltemplate.URL(s) },
	"urlUnescape": url.QueryUnescape,
	"stringSlice": func(s ...string) []string { return s },
	"date":        func(layout string, t time.Time) string { return t.Format(layout) },
	"tz": func(name string, t time.Time) (time.Time, error) {
		loc, err := time.LoadLocation(name)
		if err != nil {
			return time.Time{}, err
		}
		return t.In(loc), nil
	},
	"since":            time.Since,
	"humanizeDuration": humanizeDuration,
}

// humanizeDuration renders seconds as Prometheus does: "1d 2h 3m 4s",
// or with a unit below a second.
func humanizeDuration(v any) (string, error) {
	var secs float64
	switch x := v.(type) {
	case float64:
		secs = x
	case int:
		secs = float64(x)
	case time.Duration:
		secs = x.Seconds()
	case string:
		if _, err := fmt.Sscanf(x, "%g", &secs); err != nil {
			return "", fmt.Errorf("humanizeDuration: %q is not a number of seconds", x)
		}
	default:
		return "", fmt.Errorf("humanizeDuration: want seconds, got %T", v)
	}
	if secs < 0 {
		s, err := humanizeDuration(-secs)
		return "-" + s, err
	}
	if secs >= 1 || secs == 0 {
		d := int64(secs)
		days, hours, mins, s := d/86400, d/3600%24, d/60%60, secs-float64(d/60*60)
		var parts []string
		if days > 0 {
			parts = append(parts, fmt.Sprintf("%dd", days))
		}
		if hours > 0 {
			parts = append(parts, fmt.Sprintf("%dh", hours))
		}
		if mins > 0 {
			parts = append(parts, fmt.Sprintf("%dm", mins))
		}
		if s > 0 || len(parts) == 0 {
			parts = append(parts, fmt.Sprintf("%.4gs", s))
		}
		return strings.Join(parts, " "), nil
	}
	for _, u := range []struct {
		name string
		mul  float64
	}{{"ms", 1e3}, {"us", 1e6}, {"ns", 1e9}} {
		if v := secs * u.mul; v >= 1 {
			return fmt.Sprintf("%.4g%s", v, u.name), nil
		}
	}
	return fmt.Sprintf("%.4gs", secs), nil
}
