package engine

import (
	"regexp"

	"github.com/kdiag/kdiag/engine/transcript"
)

// Redacted replaces every secret value before it is recorded or seen.
const Redacted = "<redacted>"

// A RedactionRule is one rule of the rule set Redact applies to every
// string kdiag records: call arguments, results and errors, mutation
// records, log lines, findings, verdicts, failures, footers, header
// params and labels, and (in kdiag serve) alert metadata.
type RedactionRule struct {
	// Name names the rule (docs/reliability.md lists them).
	Name string
	// Example is a value the rule redacts.
	Example string
	re      *regexp.Regexp
	repl    string
}

// secretWord is the part of a name that marks its value secret, as a
// substring; shortWord must be a whole word of the name (GITHUB_PAT, not
// PATH); "key" must end a longer name (SSH_KEY, not a ConfigMap's key).
const (
	secretWord = `passw|passphrase|pwd|secret|token|api[-_]?key|apikey|private[-_]?key|access[-_]?key|signing[-_]?key|encryption[-_]?key|credential|auth|webhook|dsn|database[-_]?url|conn(?:ection)?[-_]?str|cookie|session[-_]?id|signature`
	shortWord  = `pat|pw|pass|sig`
	nameChars  = `[A-Za-z0-9_.-]*`
	secretName = `(?:` + nameChars + `(?:` + secretWord + `)` + nameChars + `|(?:[A-Za-z0-9]+[_.-])*(?:` + shortWord + `)(?:[_.-][A-Za-z0-9]+)*|(?:[A-Za-z0-9]+[_.-])+key)`
)

// RedactionRules are the string rules, applied in order.
var RedactionRules = []RedactionRule{
	{Name: "pem-private-key", Example: "-----BEGIN RSA PRIVATE KEY-----\\nMIIE...\\n-----END RSA PRIVATE KEY-----",
		re: regexp.MustCompile(`-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----[\s\S]*?(?:-----END [A-Z0-9 ]*-----|$)`), repl: "-----BEGIN $1-----" + Redacted + "-----END $1-----"},
	{Name: "url-userinfo", Example: "postgres://app:hunter2@db:5432/x",
		re: regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@"']*:)[^@\s/"']*@`), repl: "${1}" + Redacted + "@"},
	{Name: "url-query-secret", Example: "https://x/cb?access_token=abc&sig=def",
		re: regexp.MustCompile(`(?i)([?&;](?:` + secretName + `|code|key)=)[^&#\s"'<>]+`), repl: "${1}" + Redacted},
	{Name: "slack-webhook-url", Example: "https://hooks.slack.com/services/T0/B0/XYZ",
		re: regexp.MustCompile(`(https://hooks\.slack\.com/(?:services|workflows|triggers)/)[A-Za-z0-9/_-]+`), repl: "${1}" + Redacted},
	{Name: "auth-header", Example: "Authorization: Bearer abc",
		re: regexp.MustCompile(`(?i)((?:^|[\s{,"'])(?:proxy-)?(?:authorization|x-api-key|x-auth-token|x-vault-token|private-token|cookie|set-cookie|x-amz-security-token)["']?\s*[:=]\s*["']?)[^"'\r\n]+`), repl: "${1}" + Redacted},
	{Name: "auth-scheme", Example: "Bearer eyJhbGciOi...",
		re: regexp.MustCompile(`\b(Bearer|Basic|Digest|Negotiate|bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}`), repl: "$1 " + Redacted},
	{Name: "argv-flag", Example: "--password hunter2, --token=abc, --auth 'Bearer x'",
		re: regexp.MustCompile(`(?i)(\s|^)(--?` + secretName + `)(=|\s+)("[^"]*"|'[^']*'|\S+)`), repl: "$1$2$3" + Redacted},
	{Name: "env-assignment", Example: "MYSQL_PWD=hunter2, export GITHUB_PAT=ghp_...",
		re: regexp.MustCompile(`(?i)(^|[^A-Za-z0-9_.-])(` + secretName + `)=("[^"]*"|'[^']*'|[^\s&;,"']+)`), repl: "$1$2=" + Redacted},
	{Name: "colon-assignment", Example: "db_password: hunter2, \"api_key\": \"abc\"",
		re: regexp.MustCompile(`(?i)(^|[^A-Za-z0-9_.-])(` + secretName + `)(["']?\s*:\s+|["']?\s*:\s*["'])("[^"]*"|'[^']*'|[^\s,}"']+)`), repl: "$1$2$3" + Redacted},
	{Name: "github-token", Example: "ghp_0123456789abcdefghij0123456789abcd",
		re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})`), repl: Redacted},
	{Name: "gitlab-token", Example: "glpat-0123456789abcdefghij",
		re: regexp.MustCompile(`\bglpat-[A-Za-z0-9_-]{20,}`), repl: Redacted},
	{Name: "slack-token", Example: "xoxb-123-456-abc",
		re: regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`), repl: Redacted},
	{Name: "aws-access-key-id", Example: "AKIAIOSFODNN7EXAMPLE",
		re: regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`), repl: Redacted},
	{Name: "jwt", Example: "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig...",
		re: regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}`), repl: Redacted},
	{Name: "google-api-key", Example: "AIzaSy...",
		re: regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}`), repl: Redacted},
	{Name: "stripe-key", Example: "sk_live_...",
		re: regexp.MustCompile(`\b[sr]k_(?:live|test)_[0-9A-Za-z]{16,}`), repl: Redacted},
	{Name: "npm-token", Example: "npm_...",
		re: regexp.MustCompile(`\bnpm_[A-Za-z0-9]{36}\b`), repl: Redacted},
}

var (
	// secretKey matches map keys whose string values are secret.
	secretKey = regexp.MustCompile(`(?i)^(?:` + secretName + `|.*bearer.*)$`)
	// secretFlag matches an argv element naming a secret flag whose value
	// is the next element: ["--token", "X"].
	secretFlag = regexp.MustCompile(`(?i)^--?` + secretName + `$`)
)

// RedactString applies the string rules to s.
func RedactString(s string) string {
	if !mayHoldSecret([]byte(s)) {
		return s
	}
	for _, r := range RedactionRules {
		s = r.re.ReplaceAllString(s, r.repl)
	}
	return s
}

// Redact removes secret values from a JSON-form value in place and returns
// it: values of secret-looking keys, values of {name, value} pairs with a
// secret-looking name, the element after a secret flag in an argv list,
// the data of Kubernetes Secret objects, and in every string whatever
// RedactionRules match.
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
			if i > 0 {
				if flag, ok := x[i-1].(string); ok && secretFlag.MatchString(flag) {
					if _, ok := x[i].(string); ok {
						x[i] = Redacted
						continue
					}
				}
			}
			x[i] = Redact(x[i])
		}
	case string:
		return RedactString(x)
	}
	return v
}

// RedactMap returns a copy of m with Redact's rules applied to its values
// (header labels, alert labels and annotations).
func RedactMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		if v != "" && secretKey.MatchString(k) {
			out[k] = Redacted
			continue
		}
		out[k] = RedactString(v)
	}
	return out
}

// secretHints are lower-case strings one of which every value a rule or
// a secret key matches contains; values without any skip the rules.
var secretHints = [][]byte{
	[]byte("passw"), []byte("secret"), []byte("token"), []byte("apikey"), []byte("api_key"), []byte("api-key"),
	[]byte("private"), []byte("credential"), []byte("auth"), []byte("cookie"), []byte("session"), []byte("bearer"),
	[]byte("pwd"), []byte("pat"), []byte("key"), []byte("pw"), []byte("pass"), []byte("sig"), []byte("webhook"), []byte("dsn"),
	[]byte("database"), []byte("conn"), []byte("://"), []byte("-----begin"), []byte("gh"), []byte("glpat"), []byte("xox"),
	[]byte("akia"), []byte("asia"), []byte("eyj"), []byte("aiza"), []byte("sk_"), []byte("rk_"), []byte("npm_"), []byte("basic"),
	[]byte("digest"), []byte("negotiate"), []byte("code"),
}

// hintStart marks the first letters of secretHints.
var hintStart = func() (t [256]bool) {
	for _, h := range secretHints {
		t[h[0]] = true
	}
	return t
}()

// mayHoldSecret reports whether encoded JSON or a string mentions
// anything Redact would act on; most values do not, and skip the decode,
// the rules and the re-encode.
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
		if c == '-' || c == '_' || c == ':' || c == '/' {
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

// redactEvent applies the rules to the free-text fields of an event about
// to be recorded and published (arguments, results, mutations and
// evidence are redacted when they are encoded): messages, summaries,
// errors, cleanups, header params and labels.
func redactEvent(e *transcript.Event) {
	e.Message, e.Summary = RedactString(e.Message), RedactString(e.Summary)
	if e.Error != nil {
		e.Error.Message = RedactString(e.Error.Message)
	}
	for i := range e.Cleanups {
		e.Cleanups[i].Error = RedactString(e.Cleanups[i].Error)
	}
	if e.Type == transcript.TypeHeader {
		if e.Params != nil {
			p := make(map[string]any, len(e.Params))
			for k, v := range e.Params {
				if s, ok := v.(string); ok && s != "" && secretKey.MatchString(k) {
					p[k] = Redacted
					continue
				}
				p[k] = Redact(copyJSON(v))
			}
			e.Params = p
		}
		e.Labels = RedactMap(e.Labels)
	}
}

// redactError returns err with the rules applied to its message; errors.Is
// and errors.As still see the original.
func redactError(err error) error {
	if err == nil {
		return nil
	}
	if msg := err.Error(); RedactString(msg) != msg {
		return &redactedError{err: err, msg: RedactString(msg)}
	}
	return err
}

type redactedError struct {
	err error
	msg string
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }
