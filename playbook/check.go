package playbook

import (
	"net/url"
	"time"
)

// check validates the values Load can judge without the built-ins or the
// runbooks, and compiles the routes' matchers and templates.
func (c *Config) check() error {
	switch {
	case c.MaxBodyBytes < 0:
		return c.errorf(p("max_body_bytes"), "max_body_bytes must be positive, got %d", c.MaxBodyBytes)
	case c.Concurrency < 0:
		return c.errorf(p("concurrency"), "concurrency must be at least 1, got %d", c.Concurrency)
	case c.Queue < 0:
		return c.errorf(p("queue"), "queue must be at least 1, got %d", c.Queue)
	case c.RepoUpdate.Every < 0 || c.RepoUpdate.Every > 0 && c.RepoUpdate.Every < time.Minute:
		return c.errorf(p("repo_update", "every"), "repo_update.every must be at least 1m (or 0: only on POST /repos/update), got %s", c.RepoUpdate.Every)
	case c.DedupeWindow < 0:
		return c.errorf(p("dedupe_window"), "dedupe_window must not be negative, got %s", c.DedupeWindow)
	case c.ReadTimeout < 0, c.BodyTimeout < 0, c.IdleTimeout < 0:
		return c.errorf(p("read_timeout"), "read_timeout, body_timeout and idle_timeout must be positive")
	case c.MaxHeaderBytes < 0, c.MaxConnections < 0, c.MaxUnauthenticatedBodies < 0:
		return c.errorf(p("max_connections"), "max_header_bytes, max_connections and max_unauthenticated_bodies must be positive")
	}
	if err := c.checkURL(p("external_url"), "external_url", c.ExternalURL); err != nil {
		return err
	}
	if err := c.checkAuth(); err != nil {
		return err
	}
	if err := c.checkExecutor(); err != nil {
		return err
	}
	if n := c.Notify; n != nil {
		if n.URL == "" {
			return c.errorf(p("notify"), "notify: url is required")
		}
		if err := c.checkURL(p("notify", "url"), "notify.url", n.URL); err != nil {
			return err
		}
		if n.TokenFile != "" && n.TokenEnv != "" {
			return c.errorf(p("notify", "token_env"), "notify: give token_file or token_env, not both")
		}
	}
	if len(c.Routes) == 0 {
		return c.errorf(p("routes"), "no routes: add at least one under routes: (match, runbook, params)")
	}
	seen := map[string]int{}
	for i := range c.Routes {
		name := c.Routes[i].Name
		if j, dup := seen[name]; dup {
			return c.errorf(p("routes", i, "name"), "route %q: the name is also used by route %d", name, j+1)
		}
		seen[name] = i
		if _, err := compileRoute(c, i); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkAuth() error {
	a := c.Auth
	if a.TokenFile != "" && a.TokenEnv != "" {
		return c.errorf(p("auth", "token_env"), "auth: give token_file or token_env, not both")
	}
	if a.HMACSecretFile != "" && a.HMACSecretEnv != "" {
		return c.errorf(p("auth", "hmac_secret_env"), "auth: give hmac_secret_file or hmac_secret_env, not both")
	}
	if a.Require != "any" && a.Require != "all" {
		return c.errorf(p("auth", "require"), "auth.require: unknown value %q (want any or all)", a.Require)
	}
	none := a.TokenFile == "" && a.TokenEnv == "" && a.HMACSecretFile == "" && a.HMACSecretEnv == ""
	if none && !a.Insecure {
		return c.errorf(p("auth"), "auth: no bearer token or HMAC secret configured (token_file, token_env, hmac_secret_file or hmac_secret_env); anyone could start runbooks, set auth.insecure: true to allow that")
	}
	if a.ReadTokenFile != "" && a.ReadTokenEnv != "" {
		return c.errorf(p("auth", "read_token_env"), "auth: give read_token_file or read_token_env, not both")
	}
	if !none && a.Insecure {
		return c.errorf(p("auth", "insecure"), "auth.insecure: true contradicts the configured token or secret")
	}
	return nil
}

func (c *Config) checkURL(path []any, field, s string) error {
	if s == "" {
		return nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return c.errorf(path, "%s: %q is not an absolute http(s) URL", field, s)
	}
	return nil
}

// p builds a node path for Config.errorf.
func p(parts ...any) []any { return parts }
