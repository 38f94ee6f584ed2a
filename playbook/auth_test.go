package playbook_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/playbook"
)

// TestWebhookRefusals checks what is refused before anything is routed:
// wrong or missing credentials (401), oversized bodies (413), bad JSON and
// other payload versions (400), other methods (405). Nothing runs.
func TestWebhookRefusals(t *testing.T) {
	const secret = "hmac-key"
	t.Setenv("KDIAG_TEST_HMAC", secret)
	good, _ := json.Marshal(podAlerts("web-0"))
	big := bytes.Repeat([]byte(" "), 4096)
	cases := []struct {
		name     string
		settings string
		token    string
		header   map[string]string
		body     []byte
		code     int
		msg      string
	}{
		{"no token", "", "", nil, good, 401, "missing or wrong bearer token"},
		{"wrong token", "", "s3cret-tokeN", nil, good, 401, "missing or wrong bearer token"},
		{"basic auth", "", "", map[string]string{"Authorization": "Basic czNjcmV0LXRva2Vu"}, good, 401, "bearer"},
		{"oversized", "max_body_bytes: 1024\n", testToken, nil, append(append([]byte{}, good...), big...), 413, "over the limit of 1024"},
		{"bad json", "", testToken, nil, []byte(`{"version":"4","alerts":[`), 400, "bad alert payload"},
		{"not an object", "", testToken, nil, []byte(`[1,2]`), 400, "bad alert payload"},
		{"version 3", "", testToken, nil, bytes.Replace(good, []byte(`"version":"4"`), []byte(`"version":"3"`), 1), 400, `unsupported webhook payload version "3"`},
		{"no version", "", testToken, nil, bytes.Replace(good, []byte(`"version":"4",`), nil, 1), 400, `no "version"`},
		{"hmac only, unsigned", "auth:\n  hmac_secret_env: KDIAG_TEST_HMAC\n", "", nil, good, 401, "X-Kdiag-Signature signature"},
		{"hmac only, bad signature", "auth:\n  hmac_secret_env: KDIAG_TEST_HMAC\n", "", map[string]string{"X-Kdiag-Signature": playbook.Sign([]byte("other"), good)}, good, 401, "signature"},
		{"hmac only, not hex", "auth:\n  hmac_secret_env: KDIAG_TEST_HMAC\n", "", map[string]string{"X-Kdiag-Signature": "sha256=zz"}, good, 401, "signature"},
		{"hmac, signature of another body", "  hmac_secret_env: KDIAG_TEST_HMAC\n", "", map[string]string{"X-Kdiag-Signature": playbook.Sign([]byte(secret), append(good, ' '))}, good, 401, "signature"},
		{"all: token without signature", "  hmac_secret_env: KDIAG_TEST_HMAC\n  require: all\n", testToken, nil, good, 401, "signature"},
		{"all: signature without token", "  hmac_secret_env: KDIAG_TEST_HMAC\n  require: all\n", "", map[string]string{"X-Kdiag-Signature": playbook.Sign([]byte(secret), good)}, good, 401, "bearer"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			settings := c.settings
			if strings.HasPrefix(settings, "  ") { // more auth settings
				settings = "auth:\n  token_file: token\n" + settings
			}
			s, _ := start(t, config(t, t.TempDir(), settings, podRoute(t, "")))
			s.Token = c.token
			code, b := s.Post(t, c.body, c.header)
			if code != c.code || !strings.Contains(string(b), c.msg) {
				t.Fatalf("POST: %d %s, want %d and %q", code, b, c.code, c.msg)
			}
			if runs, err := s.Store().List(); err != nil || len(runs) != 0 {
				t.Fatalf("runs after a refused webhook: %v %v", runs, err)
			}
		})
	}
}

// TestWebhookAccepted checks the credentials that are accepted: the
// bearer token, the HMAC signature alone, either one under require: any,
// both under require: all.
func TestWebhookAccepted(t *testing.T) {
	const secret = "hmac-key"
	t.Setenv("KDIAG_TEST_HMAC", secret)
	body, _ := json.Marshal(podAlerts("web-0"))
	sig := map[string]string{"X-Kdiag-Signature": playbook.Sign([]byte(secret), body)}
	cases := []struct {
		name, auth, token string
		header            map[string]string
	}{
		{"token", "", testToken, nil},
		{"any: token only", "  hmac_secret_env: KDIAG_TEST_HMAC\n", testToken, nil},
		{"hmac only", "", "", sig},
		{"any: signature only", "  hmac_secret_env: KDIAG_TEST_HMAC\n", "", sig},
		{"any: wrong token, good signature", "  hmac_secret_env: KDIAG_TEST_HMAC\n", "wrong", sig},
		{"all: both", "  hmac_secret_env: KDIAG_TEST_HMAC\n  require: all\n", testToken, sig},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			auth := "auth:\n  token_file: token\n" + c.auth
			if c.name == "hmac only" {
				auth = "auth:\n  hmac_secret_env: KDIAG_TEST_HMAC\n"
			}
			s, _ := start(t, config(t, t.TempDir(), auth, podRoute(t, "")))
			s.Token = c.token
			code, b := s.Post(t, body, c.header)
			var resp playbook.WebhookResponse
			if code != 200 || json.Unmarshal(b, &resp) != nil || resp.Alerts[0].Outcome != playbook.OutcomeStarted {
				t.Fatalf("POST: %d %s", code, b)
			}
		})
	}
}
