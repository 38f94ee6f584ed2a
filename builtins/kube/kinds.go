package kube

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strings"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// kindInfo describes a kind that get and list know.
type kindInfo struct {
	name       string // canonical lower-case singular, as in messages
	kind       string
	group      string
	version    string
	resource   string
	namespaced bool
}

func (k kindInfo) apiVersion() string {
	if k.group == "" {
		return k.version
	}
	return k.group + "/" + k.version
}

var kindTable = []struct {
	aliases []string
	info    kindInfo
}{
	{[]string{"pod", "pods", "po"}, kindInfo{"pod", "Pod", "", "v1", "pods", true}},
	{[]string{"configmap", "configmaps", "cm"}, kindInfo{"configmap", "ConfigMap", "", "v1", "configmaps", true}},
	{[]string{"secret", "secrets"}, kindInfo{"secret", "Secret", "", "v1", "secrets", true}},
	{[]string{"service", "services", "svc"}, kindInfo{"service", "Service", "", "v1", "services", true}},
	{[]string{"endpoints", "ep"}, kindInfo{"endpoints", "Endpoints", "", "v1", "endpoints", true}},
	{[]string{"event", "events", "ev"}, kindInfo{"event", "Event", "", "v1", "events", true}},
	{[]string{"serviceaccount", "serviceaccounts", "sa"}, kindInfo{"serviceaccount", "ServiceAccount", "", "v1", "serviceaccounts", true}},
	{[]string{"pvc", "pvcs", "persistentvolumeclaim", "persistentvolumeclaims"}, kindInfo{"pvc", "PersistentVolumeClaim", "", "v1", "persistentvolumeclaims", true}},
	{[]string{"pv", "pvs", "persistentvolume", "persistentvolumes"}, kindInfo{"pv", "PersistentVolume", "", "v1", "persistentvolumes", false}},
	{[]string{"node", "nodes", "no"}, kindInfo{"node", "Node", "", "v1", "nodes", false}},
	{[]string{"namespace", "namespaces", "ns"}, kindInfo{"namespace", "Namespace", "", "v1", "namespaces", false}},
	{[]string{"lease", "leases"}, kindInfo{"lease", "Lease", "coordination.k8s.io", "v1", "leases", true}},
	{[]string{"deployment", "deployments", "deploy"}, kindInfo{"deployment", "Deployment", "apps", "v1", "deployments", true}},
	{[]string{"replicaset", "replicasets", "rs"}, kindInfo{"replicaset", "ReplicaSet", "apps", "v1", "replicasets", true}},
	{[]string{"statefulset", "statefulsets", "sts"}, kindInfo{"statefulset", "StatefulSet", "apps", "v1", "statefulsets", true}},
	{[]string{"daemonset", "daemonsets", "ds"}, kindInfo{"daemonset", "DaemonSet", "apps", "v1", "daemonsets", true}},
	{[]string{"job", "jobs"}, kindInfo{"job", "Job", "batch", "v1", "jobs", true}},
	{[]string{"cronjob", "cronjobs", "cj"}, kindInfo{"cronjob", "CronJob", "batch", "v1", "cronjobs", true}},
	{[]string{"ingress", "ingresses", "ing"}, kindInfo{"ingress", "Ingress", "networking.k8s.io", "v1", "ingresses", true}},
	{[]string{"hpa", "hpas", "horizontalpodautoscaler", "horizontalpodautoscalers"}, kindInfo{"hpa", "HorizontalPodAutoscaler", "autoscaling", "v2", "horizontalpodautoscalers", true}},
	{[]string{"pdb", "pdbs", "poddisruptionbudget", "poddisruptionbudgets"}, kindInfo{"pdb", "PodDisruptionBudget", "policy", "v1", "poddisruptionbudgets", true}},
	{[]string{"networkpolicy", "networkpolicies", "netpol"}, kindInfo{"networkpolicy", "NetworkPolicy", "networking.k8s.io", "v1", "networkpolicies", true}},
	{[]string{"resourcequota", "resourcequotas", "quota"}, kindInfo{"resourcequota", "ResourceQuota", "", "v1", "resourcequotas", true}},
	{[]string{"validatingadmissionpolicy", "validatingadmissionpolicies", "vap"}, kindInfo{"validatingadmissionpolicy", "ValidatingAdmissionPolicy", "admissionregistration.k8s.io", "v1", "validatingadmissionpolicies", false}},
	{[]string{"validatingadmissionpolicybinding", "validatingadmissionpolicybindings"}, kindInfo{"validatingadmissionpolicybinding", "ValidatingAdmissionPolicyBinding", "admissionregistration.k8s.io", "v1", "validatingadmissionpolicybindings", false}},
	{[]string{"validatingwebhookconfiguration", "validatingwebhookconfigurations"}, kindInfo{"validatingwebhookconfiguration", "ValidatingWebhookConfiguration", "admissionregistration.k8s.io", "v1", "validatingwebhookconfigurations", false}},
	{[]string{"mutatingwebhookconfiguration", "mutatingwebhookconfigurations"}, kindInfo{"mutatingwebhookconfiguration", "MutatingWebhookConfiguration", "admissionregistration.k8s.io", "v1", "mutatingwebhookconfigurations", false}},
}

// lookupKind resolves a kind name or alias, case-insensitively.
func lookupKind(s string) (kindInfo, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, e := range kindTable {
		for _, a := range e.aliases {
			if a == s {
				return e.info, true
			}
		}
		if strings.ToLower(e.info.kind) == s {
			return e.info, true
		}
	}
	return kindInfo{}, false
}

// kindNames lists the canonical kind names, for error messages.
func kindNames() string {
	names := make([]string, len(kindTable))
	for i, e := range kindTable {
		names[i] = e.info.name
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// restFor returns the REST client of the kind's API group.
func restFor(cs kubernetes.Interface, k kindInfo) rest.Interface {
	switch k.group {
	case "apps":
		return cs.AppsV1().RESTClient()
	case "batch":
		return cs.BatchV1().RESTClient()
	case "networking.k8s.io":
		return cs.NetworkingV1().RESTClient()
	case "autoscaling":
		return cs.AutoscalingV2().RESTClient()
	case "policy":
		return cs.PolicyV1().RESTClient()
	case "admissionregistration.k8s.io":
		return cs.AdmissionregistrationV1().RESTClient()
	case "coordination.k8s.io":
		return cs.CoordinationV1().RESTClient()
	}
	return cs.CoreV1().RESTClient()
}

// decodeObject decodes JSON keeping integers exact.
func decodeObject(raw []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// Redacted replaces every secret value kdiag returns.
const Redacted = "<redacted>"

// secretName matches the names of environment variables, headers and keys
// whose values are redacted.
var secretName = regexp.MustCompile(`(?i)(passw|secret|token|api[_-]?key|private[_-]?key|credential|auth|cookie|session)`)

// cleanObject strips managedFields and redacts secrets in an object of
// kind k: all Secret data, the last-applied annotation of a Secret, and the
// values of secret-looking environment variables anywhere in the object.
func cleanObject(obj map[string]any, k kindInfo) {
	if k.kind != "" {
		if _, ok := obj["kind"]; !ok {
			obj["kind"] = k.kind
			obj["apiVersion"] = k.apiVersion()
		}
	}
	if md, ok := obj["metadata"].(map[string]any); ok {
		delete(md, "managedFields")
		if k.kind == "Secret" {
			if ann, ok := md["annotations"].(map[string]any); ok {
				if _, ok := ann["kubectl.kubernetes.io/last-applied-configuration"]; ok {
					ann["kubectl.kubernetes.io/last-applied-configuration"] = Redacted
				}
			}
		}
	}
	if k.kind == "Secret" {
		for _, f := range []string{"data", "stringData"} {
			if d, ok := obj[f].(map[string]any); ok {
				for key := range d {
					d[key] = Redacted
				}
			}
		}
	}
	redactEnv(obj)
}

// redactEnv walks v and redacts the value of every {name, value} entry of
// an "env" list whose name looks secret.
func redactEnv(v any) {
	switch x := v.(type) {
	case map[string]any:
		for key, e := range x {
			if key == "env" {
				if list, ok := e.([]any); ok {
					for _, item := range list {
						m, ok := item.(map[string]any)
						if !ok {
							continue
						}
						name, _ := m["name"].(string)
						if _, has := m["value"]; has && secretName.MatchString(name) {
							m["value"] = Redacted
						}
					}
					continue
				}
			}
			redactEnv(e)
		}
	case []any:
		for _, e := range x {
			redactEnv(e)
		}
	}
}
