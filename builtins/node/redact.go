package node

import (
	"regexp"

	"github.com/kdiag/kdiag/engine"
)

// secretName matches names whose values must not be recorded: environment
// variables and HTTP headers.
var secretName = regexp.MustCompile(`(?i)(passw|passphrase|secret|token|key|credential|auth|private|cookie|session|signature|bearer)`)

// isSecretName reports whether a variable or header named name holds a
// secret.
func isSecretName(name string) bool { return secretName.MatchString(name) }

// redactHeader returns the recorded value of a header.
func redactHeader(name, value string) string {
	if value != "" && isSecretName(name) {
		return engine.Redacted
	}
	return value
}

// urlCredentials matches scheme://user:password@ in any value.
var urlCredentials = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)[^@\s/]*@`)

// redactEnv returns the recorded value of an environment variable and
// whether it was redacted: secret-looking names lose their value, and a
// password in a URL (postgres://user:pw@host) is hidden in any value.
func redactEnv(name, value string) (string, bool) {
	if value != "" && isSecretName(name) {
		return engine.Redacted, true
	}
	if urlCredentials.MatchString(value) {
		return urlCredentials.ReplaceAllString(value, "${1}"+engine.Redacted+"@"), true
	}
	return value, false
}
