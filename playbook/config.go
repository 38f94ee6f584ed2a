// Package playbook is kdiag's automated incident playbook server: it
// receives Alertmanager webhooks, routes each firing alert to a runbook
// with parameters taken from the alert, runs it under a mutation policy
// through an Executor (Local in-process, or the Job executor of package
// playbook/job), and stores the transcript, the reports and the run's
// metadata, served over HTTP with Prometheus metrics.
package playbook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults of the optional settings.
const (
	DefaultListen       = ":8080"
	DefaultMaxBodyBytes = 1 << 20
	DefaultConcurrency  = 2
	DefaultQueue        = 16
	DefaultDedupeWindow = 10 * time.Minute
	DefaultTimeout      = 10 * time.Minute
	DefaultHMACHeader   = "X-Kdiag-Signature"

	DefaultReadTimeout              = 30 * time.Second
	DefaultBodyTimeout              = 10 * time.Second
	DefaultIdleTimeout              = 60 * time.Second
	DefaultMaxHeaderBytes           = 64 << 10
	DefaultMaxConnections           = 512
	DefaultMaxUnauthenticatedBodies = 16
)

// Config is a playbooks.yaml file: how the server authenticates senders,
// its limits, where it stores runs, and the routes from alerts to
// runbooks.
type Config struct {
	// Listen is the address to serve on; --listen overrides it.
	Listen string `yaml:"listen"`
	// Store is the directory runs are kept in; --store overrides it.
	Store string `yaml:"store"`
	// ExternalURL is the server's base URL as people reach it; report links
	// in notifications are made from it.
	ExternalURL string `yaml:"external_url"`
	// Auth says how senders of alerts authenticate.
	Auth AuthConfig `yaml:"auth"`
	// MaxBodyBytes bounds a webhook body (default 1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ReadTimeout bounds reading one request, headers and body (default
	// 30s).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// BodyTimeout bounds reading a body whose sender is not yet
	// authenticated (an HMAC signature needs the body; default 10s).
	BodyTimeout time.Duration `yaml:"body_timeout"`
	// IdleTimeout closes keep-alive connections idle this long (default
	// 60s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes bounds a request's headers (default 64 KiB).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnections caps the open connections (default 512): at the cap
	// an idle keep-alive connection is closed to make room, and without
	// one the new connection is closed at once.
	MaxConnections int `yaml:"max_connections"`
	// MaxUnauthenticatedBodies caps the bodies read at once before their
	// sender is authenticated (default 16); beyond it the answer is 503.
	MaxUnauthenticatedBodies int `yaml:"max_unauthenticated_bodies"`
	// Concurrency is the number of runs at once (default 2).
	Concurrency int `yaml:"concurrency"`
	// Queue is the number of runs that may wait for a free slot (default
	// 16); alerts beyond it are rejected with 503 so the sender retries.
	Queue int `yaml:"queue"`
	// DedupeWindow is how long after a run for an alert fingerprint ends
	// that the same fingerprint is deduplicated (default 10m).
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// Executor runs the runbooks: "local" (in-process, the default) or
	// "job" (a Kubernetes Job per run, see Job).
	Executor string `yaml:"executor"`
	// Job holds the Job executor's settings (executor: job).
	Job *JobConfig `yaml:"job"`
	// Repos are runbook repositories by name, in addition to --repo.
	Repos map[string]string `yaml:"repos"`
	// RepoUpdate says when the pinned repositories (kdiag repo add) are
	// updated besides POST /repos/update.
	RepoUpdate RepoUpdateConfig `yaml:"repo_update"`
	// TranscriptKeyFile or TranscriptKeyEnv, if set, holds the key
	// finished runs' transcripts are signed with (transcript.jsonl.sig,
	// HMAC-SHA256); kdiag undo --transcript-key-file verifies it.
	TranscriptKeyFile string `yaml:"transcript_key_file"`
	TranscriptKeyEnv  string `yaml:"transcript_key_env"`
	// Notify, if set, receives a summary of every finished run.
	Notify *NotifyConfig `yaml:"notify"`
	// Routes map alerts to runbooks; the first matching route wins.
	Routes []RouteConfig `yaml:"routes"`

	// Path is the file the config was read from.
	Path string `yaml:"-"`
	root *yaml.Node
}

// AuthConfig says how senders authenticate: a bearer token, an
// HMAC-SHA256 signature of the body, or both.
type AuthConfig struct {
	// TokenFile holds the bearer token (surrounding whitespace is trimmed).
	TokenFile string `yaml:"token_file"`
	// TokenEnv names the environment variable holding the bearer token.
	TokenEnv string `yaml:"token_env"`
	// HMACSecretFile holds the HMAC-SHA256 secret.
	HMACSecretFile string `yaml:"hmac_secret_file"`
	// HMACSecretEnv names the environment variable holding the secret.
	HMACSecretEnv string `yaml:"hmac_secret_env"`
	// HMACHeader carries "sha256=HEX" (default X-Kdiag-Signature).
	HMACHeader string `yaml:"hmac_header"`
	// Require is "any" (default: one configured method suffices) or "all".
	Require string `yaml:"require"`
	// Insecure allows a server with no authentication at all.
	Insecure bool `yaml:"insecure"`
	// ReadTokenFile or ReadTokenEnv holds a bearer token for the read
	// endpoints (/, /runs, reports, transcripts), which also accept the
	// alert token. With neither token configured, reads are refused
	// unless insecure is set.
	ReadTokenFile string `yaml:"read_token_file"`
	ReadTokenEnv  string `yaml:"read_token_env"`
}

// RepoUpdateConfig is the repo_update: section.
type RepoUpdateConfig struct {
	// Every, if set, updates the pinned repositories this often, as
	// kdiag repo update does (default 0: only on POST /repos/update).
	Every time.Duration `yaml:"every"`
}

// NotifyConfig is a webhook that receives {run id, alert, status,
// verdict, report url} when a run ends.
type NotifyConfig struct {
	// URL receives a POST of a Notification per finished run.
	URL string `yaml:"url"`
	// Timeout bounds one delivery (default 10s).
	Timeout time.Duration `yaml:"timeout"`
	// TokenFile or TokenEnv, if set, holds a bearer token to send.
	TokenFile string `yaml:"token_file"`
	TokenEnv  string `yaml:"token_env"`
}

// RouteConfig maps matching alerts to a runbook.
type RouteConfig struct {
	// Name names the route in labels, logs and metrics (default route-N).
	Name string `yaml:"name"`
	// Match requires label equality.
	Match map[string]string `yaml:"match"`
	// MatchRE requires labels to match anchored regular expressions.
	MatchRE map[string]string `yaml:"match_re"`
	// Runbook is a runbook name, an @REPO//file.star module or a path
	// (relative to the config file).
	Runbook string `yaml:"runbook"`
	// Params are Go text/template templates over the alert.
	Params map[string]string `yaml:"params"`
	// Mutations is the policy for write built-ins: never (default),
	// dry-run or allow.
	Mutations string `yaml:"mutations"`
	// AllowBuiltins are the write built-ins "allow" approves.
	AllowBuiltins []string `yaml:"allow_builtins"`
	// Timeout bounds a run (default 10m); on a fan-out route, each pod's.
	Timeout time.Duration `yaml:"timeout"`
	// Fanout, if set, runs the runbook once for each pod of the workload
	// or selector the alert names (see FanoutConfig).
	Fanout *FanoutConfig `yaml:"fanout"`
}

// Load reads and checks the config file at path. Unknown fields, bad
// values and bad templates are errors naming the file and line. Runbooks
// are resolved later, by New, against the built-ins and repositories.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, b)
}

// Parse is Load on the contents of a file; path names it in errors and
// anchors relative paths.
func Parse(path string, b []byte) (*Config, error) {
	c := &Config{Path: path}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s: empty config: want at least one route", path)
		}
		return nil, yamlError(path, err)
	}
	c.root = new(yaml.Node)
	if err := yaml.Unmarshal(b, c.root); err != nil {
		return nil, yamlError(path, err)
	}
	c.defaults()
	if err := c.check(); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *Config) defaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Queue == 0 {
		c.Queue = DefaultQueue
	}
	if c.DedupeWindow == 0 {
		c.DedupeWindow = DefaultDedupeWindow
	}
	if c.Executor == "" {
		c.Executor = DefaultExecutor()
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{{&c.ReadTimeout, DefaultReadTimeout}, {&c.BodyTimeout, DefaultBodyTimeout}, {&c.IdleTimeout, DefaultIdleTimeout}} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MaxUnauthenticatedBodies == 0 {
		c.MaxUnauthenticatedBodies = DefaultMaxUnauthenticatedBodies
	}
	if c.Auth.HMACHeader == "" {
		c.Auth.HMACHeader = DefaultHMACHeader
	}
	if c.Auth.Require == "" {
		c.Auth.Require = "any"
	}
	if c.Notify != nil && c.Notify.Timeout == 0 {
		c.Notify.Timeout = 10 * time.Second
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Name == "" {
			r.Name = "route-" + strconv.Itoa(i+1)
		}
		if r.Mutations == "" {
			r.Mutations = MutationsNever
		}
		if r.Timeout == 0 {
			r.Timeout = DefaultTimeout
		}
	}
}

// Abs returns p relative to the config file's directory, unless absolute.
func (c *Config) Abs(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(filepath.Dir(c.Path), p)
}

// errorf returns an error naming the file and the line of the node at
// path (keys and sequence indexes from the document's root).
func (c *Config) errorf(path []any, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if line := c.line(path...); line > 0 {
		return fmt.Errorf("%s:%d: %s", c.Path, line, msg)
	}
	return fmt.Errorf("%s: %s", c.Path, msg)
}

// line finds the line of the node at path, or of its nearest ancestor
// present in the file.
func (c *Config) line(path ...any) int {
	if c.root == nil || len(c.root.Content) == 0 {
		return 0
	}
	n, line := c.root.Content[0], c.root.Content[0].Line
	for _, p := range path {
		var next *yaml.Node
		switch k := p.(type) {
		case string:
			for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					next, line = n.Content[i+1], n.Content[i].Line
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && k < len(n.Content) {
				next = n.Content[k]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

var (
	yamlLine     = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
)

// yamlError rewrites yaml.v3's errors as FILE:LINE: message, naming the
// fields a section accepts when a field is unknown.
func yamlError(path string, err error) error {
	var lines []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		lines = te.Errors
	} else {
		lines = []string{err.Error()}
	}
	var out []string
	for _, l := range lines {
		m := yamlLine.FindStringSubmatch(l)
		if m == nil {
			out = append(out, path+": "+strings.TrimPrefix(l, "yaml: "))
			continue
		}
		msg := m[2]
		if u := unknownField.FindStringSubmatch(msg); u != nil {
			msg = fmt.Sprintf("unknown field %q in %s", u[1], sectionFields(u[2]))
		}
		out = append(out, path+":"+m[1]+": "+msg)
	}
	return errors.New(strings.Join(out, "\n"))
}

// sectionFields names a config section and the fields it accepts, from
// the Go type name in a yaml.v3 error.
func sectionFields(typ string) string {
	switch typ {
	case "playbook.Config":
		return "the config (fields: listen, store, external_url, auth, max_body_bytes, read_timeout, body_timeout, idle_timeout, max_header_bytes, max_connections, max_unauthenticated_bodies, transcript_key_file, transcript_key_env, concurrency, queue, dedupe_window, executor, job, repos, repo_update, notify, routes)"
	case "playbook.AuthConfig":
		return "auth (fields: token_file, token_env, hmac_secret_file, hmac_secret_env, hmac_header, require, insecure, read_token_file, read_token_env)"
	case "playbook.RepoUpdateConfig":
		return "repo_update (fields: every)"
	case "playbook.NotifyConfig":
		return "notify (fields: url, timeout, token_file, token_env)"
	case "playbook.JobConfig":
		return "job (fields: namespace, image, image_pull_policy, service_account_name, host_network, env, node_mode, agent_image, agent_namespace, node_local, runtime_endpoint, node_selector, active_deadline, ttl_after_finished, termination_grace)"
	case "playbook.RouteConfig":
		return "a route (fields: name, match, match_re, runbook, params, mutations, allow_builtins, timeout, fanout)"
	case "playbook.FanoutConfig":
		return "fanout (fields: selector, owner, replicas_of, max_pods, over_max, concurrency, mutations)"
	case "playbook.OwnerConfig":
		return "fanout.owner (fields: kind, name)"
	}
	return typ
}
