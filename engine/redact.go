package engine

import (
	"regexp"
)

// Redacted replaces every secret value before it is recorded or seen.
const Redacted = "<redacted>"

var (
	secretKey = regexp.MustCompile(`(?i)(passw|secret|token|api[-_]?key|private[-_]?key|credential|authorization|cookie|session[-_]?id|bearer)`)
	secretEnv = regexp.MustCompile(`(?i)\b([A-Za-z0-9_.-]*(passw|secret|token|api[-_]?key|private[-_]?key|credential|auth)[A-Za-z0-9_.-]*)=([^\s&;,]+)`)
)

// Redact removes secret values from a JSON-form value in place and returns
// it: values of secret-looking keys, values of {name, value} pairs with a
// secret-looking name, NAME=VALUE strings with a secret-looking NAME, and
// the data of Kubernetes Secret objects.
func Redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x["kind"] == "Secret" {
			for _, field := range []string{"data", "stringData"} {
				if m, ok := x[field].(map[string]any); ok {
					for k := range m {
						m[k] = Redacted
					}
				}
			}
		}
		if name, ok := x["name"].(string); ok && secretKey.MatchString(name) {
			if _, ok := x["value"].(string); ok {
				x["value"] = Redacted
			}
		}
		for k, e := range x {
			if _, isString := e.(string); isString && secretKey.MatchString(k) && e != "" {
				x[k] = Redacted
				continue
			}
			x[k] = Redact(e)
		}
	case []any:
		for i := range x {
			x[i] = Redact(x[i])
		}
	case string:
		if secretEnv.MatchString(x) {
			return secretEnv.ReplaceAllString(x, "$1="+Redacted)
		}
	}
	return v
}

var secretHints = [][]byte{
	[]byte("passw"), []byte("secret"), []byte("token"), []byte("apikey"), []byte("api_key"), []byte("api-key"),
	[]byte("private"), []byte("credential"), []byte("auth"), []byte("cookie"), []byte("session"), []byte("bearer"),
}

// hintStart marks the first letters of secretHints.
var hintStart = func() (t [256]bool) {
	for _, h := range secretHints {
		t[h[0]] = true
	}
	return t
}()

// mayHoldSecret reports whether encoded JSON mentions anything Redact
// would act on; most values do not, and skip the decode and re-encode.
func mayHoldSecret(b []byte) bool {
	for i := range b {
		c := b[i] | 0x20 // ASCII lower case
		if !hintStart[c] {
			continue
		}
		for _, h := range secretHints {
			if c == h[0] && hasFoldPrefix(b[i:], h) {
				return true
			}
		}
	}
	return false
}

func hasFoldPrefix(b, lowerPrefix []byte) bool {
	if len(b) < len(lowerPrefix) {
		return false
	}
	for i, c := range lowerPrefix {
		d := b[i]
		if c == '-' || c == '_' {
			if d != c {
				return false
			}
			continue
		}
		if d|0x20 != c {
			return false
		}
	}
	return true
}
