package engine

import "testing"

func TestMayHoldSecret(t *testing.T) {
	for s, want := range map[string]bool{
		`{"Password":"x"}`: true, `{"API_KEY":"x"}`: true, `{"api-key":1}`: true, `DB_TOKEN=1`: true,
		`{"key":"additional_file"}`: true, `MYSQL_PWD=1`: true, `x https://u:p@h`: true,
		`{"status":200,"body":"ready"}`: false, `{"name":"web-0","ready":true,"restarts":3}`: false,
	} {
		if got := mayHoldSecret([]byte(s)); got != want {
			t.Errorf("mayHoldSecret(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	v := map[string]any{
		"env":    []any{map[string]any{"name": "DB_PASSWORD", "value": "s3cret"}, map[string]any{"name": "MODE", "value": "prod"}},
		"token":  "abc",
		"secret": map[string]any{"kind": "Secret", "data": map[string]any{"tls.key": "AAA"}},
		"line":   "connecting with API_KEY=xyz to host",
	}
	Redact(v)
	env := v["env"].([]any)
	if env[0].(map[string]any)["value"] != Redacted || env[1].(map[string]any)["value"] != "prod" {
		t.Errorf("env: %v", env)
	}
	if v["token"] != Redacted || v["secret"].(map[string]any)["data"].(map[string]any)["tls.key"] != Redacted {
		t.Errorf("keys: %v", v)
	}
	if v["line"] != "connecting with API_KEY=<redacted> to host" {
		t.Errorf("line: %v", v["line"])
	}
}
