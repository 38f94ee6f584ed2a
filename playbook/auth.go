package playbook

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// authenticator checks webhook senders: a bearer token and/or an
// HMAC-SHA256 signature of the body, compared in constant time.
type authenticator struct {
	tokenSum [32]byte // sha256 of the token: compared without leaking its length
	hasToken bool
	secret   []byte
	header   string
	all      bool
}

func newAuthenticator(c *Config) (*authenticator, error) {
	a := &authenticator{header: c.Auth.HMACHeader, all: c.Auth.Require == "all"}
	tok, err := readSecret(c, "auth", "token", c.Auth.TokenFile, c.Auth.TokenEnv)
	if err != nil {
		return nil, err
	}
	if tok != nil {
		a.tokenSum, a.hasToken = sha256.Sum256(tok), true
	}
	if a.secret, err = readSecret(c, "auth", "hmac_secret", c.Auth.HMACSecretFile, c.Auth.HMACSecretEnv); err != nil {
		return nil, err
	}
	return a, nil
}

// readSecret reads a secret from a file (whitespace trimmed) or an
// environment variable; nil when neither is configured.
func readSecret(c *Config, section, field, file, env string) ([]byte, error) {
	var v string
	switch {
	case file != "":
		b, err := os.ReadFile(c.Abs(file))
		if err != nil {
			return nil, c.errorf(p(section, field+"_file"), "%s.%s_file: %v", section, field, err)
		}
		v = string(b)
	case env != "":
		var ok bool
		if v, ok = os.LookupEnv(env); !ok {
			return nil, c.errorf(p(section, field+"_env"), "%s.%s_env: environment variable %s is not set", section, field, env)
		}
	default:
		return nil, nil
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, c.errorf(p(section), "%s: the %s is empty", section, strings.ReplaceAll(field, "_", " "))
	}
	return []byte(v), nil
}

// bearer reports whether a token is configured and whether r carries it.
func (a *authenticator) bearer(r *http.Request) (configured, ok bool) {
	if !a.hasToken {
		return false, false
	}
	got, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found {
		return true, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return true, subtle.ConstantTimeCompare(sum[:], a.tokenSum[:]) == 1
}

// signature reports whether a secret is configured and whether r's
// signature header is the HMAC-SHA256 of body: "sha256=HEX".
func (a *authenticator) signature(r *http.Request, body []byte) (configured, ok bool) {
	if a.secret == nil {
		return false, false
	}
	hexSig, found := strings.CutPrefix(strings.TrimSpace(r.Header.Get(a.header)), "sha256=")
	if !found {
		return true, false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return true, false
	}
	m := hmac.New(sha256.New, a.secret)
	m.Write(body)
	return true, hmac.Equal(got, m.Sum(nil))
}

// early decides before the body is read: it returns an error when the
// bearer token alone already settles a refusal, and whether the sender is
// already authenticated.
func (a *authenticator) early(r *http.Request) (done bool, err error) {
	conf, ok := a.bearer(r)
	switch {
	case !conf:
		return a.secret == nil, nil // no token configured: the signature decides (or nothing does)
	case ok && !a.all:
		return true, nil
	case ok:
		return a.secret == nil, nil
	case a.all || a.secret == nil:
		return false, errUnauthorized("missing or wrong bearer token")
	}
	return false, nil // a wrong token may still be made good by a signature
}

// late checks the signature once the body is read.
func (a *authenticator) late(r *http.Request, body []byte) error {
	if _, ok := a.signature(r, body); !ok {
		return errUnauthorized(fmt.Sprintf("missing or wrong %s signature (want sha256=HEX, the HMAC-SHA256 of the body)", a.header))
	}
	return nil
}

// Sign returns the signature header value of body with secret, as a
// sender computes it: "sha256=" and the hex HMAC-SHA256.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, bytes.TrimSpace(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

type errUnauthorized string

func (e errUnauthorized) Error() string { return "unauthorized: " + string(e) }

// reader wraps a read endpoint: runs, reports and transcripts hold what
// the cluster said, so they need the read token or the alert token (or a
// server configured insecure with neither).
func (s *Server) reader(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := s.readAllowed(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="kdiag"`)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		h(w, r)
	}
}

func (s *Server) readAllowed(r *http.Request) error {
	if !s.hasRead && !s.auth.hasToken {
		if s.cfg.Auth.Insecure {
			return nil
		}
		return errUnauthorized("reading runs needs a bearer token; configure auth.read_token_file (or read_token_env)")
	}
	if _, ok := s.auth.bearer(r); ok {
		return nil
	}
	if s.hasRead {
		got, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
		if subtle.ConstantTimeCompare(sum[:], s.readToken[:]) == 1 {
			return nil
		}
	}
	return errUnauthorized("missing or wrong bearer token (the read token or the alert token)")
}
