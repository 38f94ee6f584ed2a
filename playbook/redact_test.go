package playbook_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kdiag/kdiag/engine/transcript"
	"github.com/kdiag/kdiag/playbook"
)

// TestAlertSecretsRedacted sends an alert whose labels, annotations and
// generator URL carry secrets (some of which become the run's params):
// none of them reaches run.json, the transcript, the stored reports,
// any read endpoint, or the notification.
func TestAlertSecretsRedacted(t *testing.T) {
	mark := func(i int) string { return fmt.Sprintf("Yw%02dQx5", i) }
	notified := make(chan []byte, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		notified <- b
	}))
	defer recv.Close()
	s, _ := start(t, config(t, t.TempDir(), "notify:\n  url: "+recv.URL+"\n", podRoute(t, "")))
	hook := podAlerts("web-0")
	a := &hook.Alerts[0]
	a.Labels["db_password"] = mark(1)
	a.Labels["dsn"] = "postgres://app:" + mark(2) + "@db/shop"
	a.Labels["namespace"] = "shop"
	a.Annotations["summary"] = "login failed with token=" + mark(3) + " and Authorization: Bearer " + mark(4)
	a.Annotations["runbook_url"] = "https://wiki.example.com/x?access_token=" + mark(5)
	a.Annotations["webhook"] = "https://hooks.slack.com/services/T0/B0/" + mark(6)
	a.GeneratorURL = "http://prometheus:9090/graph?g0.expr=up&api_key=" + mark(7)
	id := s.Alerts(t, hook, http.StatusOK)[0].Run
	s.Wait(t, id, 10*time.Second)
	var note []byte
	select {
	case note = <-notified:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification")
	}
	outputs := map[string][]byte{"notification": note}
	ents, _ := os.ReadDir(s.Store().Dir(id))
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(s.Store().Dir(id), e.Name()))
		outputs[e.Name()] = b
	}
	for _, p := range []string{"/runs", "/runs/" + id + "?format=json", "/runs/" + id, "/runs/" + id + "?format=text", "/runs/" + id + "/transcript", "/"} {
		_, _, b := s.Get(t, p, "")
		outputs["GET "+p] = b
	}
	if len(outputs) < 10 {
		t.Fatalf("only %d outputs", len(outputs))
	}
	for i := 1; i <= 7; i++ {
		for where, b := range outputs {
			if at := bytes.Index(b, []byte(mark(i))); at >= 0 {
				t.Errorf("secret %d survives in %s: …%s…", i, where, b[max(0, at-60):min(len(b), at+20)])
			}
		}
	}
	var m playbook.Meta
	json.Unmarshal(outputs["run.json"], &m)
	if m.Alert.Labels["pod"] != "web-0" || m.Alert.Fingerprint == "" || m.Params["pod"] != "web-0" {
		t.Errorf("run.json lost what is not secret: %+v", m)
	}
}

// TestTranscriptSigned: with transcript_key_file, a finished run's
// transcript is signed (transcript.jsonl.sig, 0600) and verifies under
// the key; an edit breaks it.
func TestTranscriptSigned(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "tkey"), []byte("sign-me\n"), 0o600)
	s, _ := start(t, config(t, dir, "transcript_key_file: tkey\n", podRoute(t, "")))
	id := s.Alerts(t, podAlerts("web-0"), http.StatusOK)[0].Run
	s.Wait(t, id, 10*time.Second)
	path := s.Store().TranscriptPath(id)
	if err := transcript.Verify(path, []byte("sign-me")); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if st, err := os.Stat(transcript.SignaturePath(path)); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("signature file: %v %v", st, err)
	}
	b, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(b, []byte("web-0"), []byte("web-9"), 1), 0o600)
	if err := transcript.Verify(path, []byte("sign-me")); err == nil {
		t.Error("an edited transcript still verifies")
	}
}
