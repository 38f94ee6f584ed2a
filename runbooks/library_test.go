package runbooks

// Checks over every recording of the library: what its runbook concludes,
// as kdiag test replays it into *.expect.json.

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/kdiag/kdiag/engine/transcript"
)

// notYet lists runbooks whose critical findings do not name their field
// yet, with the reason. Empty: every runbook of the library conforms
// (readiness-probe-failing since its critical finding names configmap/NAME
// data[KEY]).
var notYet = map[string]string{}

// causeField is an object, a field path and a value:
// "deployment/web spec.template.spec.containers[0].image: shop/web:v3",
// "configmap/settings data[settings.env]: MODE=turbo",
// "node/n1 kubelet clusterDNS: (unset...".
var causeField = regexp.MustCompile(`\b(pod|deployment|statefulset|daemonset|replicaset|job|cronjob|configmap|secret|service|endpoints|node|persistentvolumeclaim|persistentvolume|serviceaccount|horizontalpodautoscaler|poddisruptionbudget|networkpolicy|namespace|resourcequota|validatingadmissionpolicy|validatingwebhookconfiguration|mutatingwebhookconfiguration)/[a-z0-9][a-z0-9.-]* [A-Za-z][A-Za-z0-9_./\[\]-]*: \S`)

type expectation struct {
	Verdict  string `json:"verdict"`
	Findings []struct {
		Severity string `json:"severity"`
		Summary  string `json:"summary"`
	} `json:"findings"`
}

type recording struct {
	runbook, name string
	expect        expectation
	transcript    string
}

func recordings(t *testing.T) []recording {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*", "*.expect.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no recordings under testdata (%v)", err)
	}
	var out []recording
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var e expectation
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, recording{
			runbook:    filepath.Base(filepath.Dir(f)),
			name:       strings.TrimSuffix(filepath.Base(f), ".expect.json"),
			expect:     e,
			transcript: strings.TrimSuffix(f, ".expect.json") + ".jsonl",
		})
	}
	return out
}

// TestCriticalFindingsNameTheField fails when a recorded critical finding
// of a runbook does not name the object, the field path and the value
// that cause the incident.
func TestCriticalFindingsNameTheField(t *testing.T) {
	for _, r := range recordings(t) {
		if _, skip := notYet[r.runbook]; skip {
			continue
		}
		for _, f := range r.expect.Findings {
			if f.Severity == "critical" && !causeField.MatchString(f.Summary) {
				t.Errorf("%s/%s: critical finding without an object, field path and value (kind/name path: value):\n  %s", r.runbook, r.name, f.Summary)
			}
		}
	}
}

// TestCriticalFieldCheckCatchesBareFindings: the check above is not vacuous.
func TestCriticalFieldCheckCatchesBareFindings(t *testing.T) {
	for _, bad := range []string{
		"container api cannot get image shop/api:v3 (ErrImagePull)",
		"nameserver 127.0.0.53 does not answer from inside the pod",
		"node kdiag-node cannot take the pod: Insufficient cpu",
	} {
		if causeField.MatchString(bad) {
			t.Errorf("accepted without a field: %s", bad)
		}
	}
	for _, good := range []string{
		"deployment/web spec.template.spec.containers[0].image: shop/web:v3: container api cannot get it",
		"configmap/orders-settings data[settings.env]: MODE=turbo: the log rejects it",
		"pod/x spec.volumes[0].configMap.items[0].path: config.yml: ...",
	} {
		if !causeField.MatchString(good) {
			t.Errorf("rejected: %s", good)
		}
	}
}

// podContainers returns the containers (init containers included) of the
// first pod_diagnosis result of a transcript.
func podContainers(t *testing.T, path string) []string {
	t.Helper()
	tr, err := transcript.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tr.Calls() {
		if e.Builtin != "pod_diagnosis" || len(e.Result) == 0 {
			continue
		}
		var d struct {
			Containers     []struct{ Name string } `json:"containers"`
			InitContainers []struct{ Name string } `json:"init_containers"`
		}
		if err := json.Unmarshal(e.Result, &d); err != nil {
			t.Fatalf("%s: pod_diagnosis result: %v", path, err)
		}
		var names []string
		for _, c := range append(d.InitContainers, d.Containers...) {
			names = append(names, c.Name)
		}
		return names
	}
	return nil
}

// containerNamed matches how runbooks name the container they judge: by
// "container NAME" or by its field path.
var containerNamed = regexp.MustCompile(`container [a-z0-9-]+|(containers|initContainers)\[\d+\]`)

// TestMultiContainerVerdictsSayWhichContainer fails when a runbook judges
// a pod of several containers and its verdict does not say which container
// it found at fault (or that none is).
func TestMultiContainerVerdictsSayWhichContainer(t *testing.T) {
	multi := 0
	for _, r := range recordings(t) {
		if _, skip := notYet[r.runbook]; skip {
			continue
		}
		names := podContainers(t, r.transcript)
		if len(names) < 2 {
			continue
		}
		multi++
		if !containerNamed.MatchString(r.expect.Verdict) {
			t.Errorf("%s/%s: the pod has containers %v but the verdict does not say which one it judged:\n  %s", r.runbook, r.name, names, r.expect.Verdict)
		}
	}
	if multi == 0 {
		t.Error("no recording of a multi-container pod: the check would pass vacuously")
	}
}
