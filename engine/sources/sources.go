// Package sources opens a connector for every Source document of a config
// set: it picks the transport by protocol, maps the document onto the
// transport's configuration and resolves secrets from the environment or
// files. It owns that mapping only; transports live in engine/connector/*.
package sources

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/rest"
	"github.com/openfsb/fsb/engine/spec"
)

// Options adjust how sources are opened.
type Options struct {
	// BaseURLs replaces the baseUrl of the named sources (the demo points
	// them at its mock servers this way).
	BaseURLs map[string]string
	// Getenv reads environment variables (default os.Getenv via LookupEnv).
	LookupEnv func(string) (string, bool)
}

// Open builds one connector per source. On error, connectors opened so far
// are closed.
func Open(set *spec.Set, opt Options) (map[string]connector.Connector, error) {
	if opt.LookupEnv == nil {
		opt.LookupEnv = os.LookupEnv
	}
	conns := map[string]connector.Connector{}
	var errs []error
	for _, name := range set.SourceNames() {
		c, err := open(set.Sources[name], opt)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: source %q: %w", set.Sources[name].Pos, name, err))
			continue
		}
		conns[name] = c
	}
	if len(errs) > 0 {
		Close(conns)
		return nil, errors.Join(errs...)
	}
	return conns, nil
}

// Close closes every connector.
func Close(conns map[string]connector.Connector) {
	for _, c := range conns {
		_ = c.Close()
	}
}

func open(src *spec.Source, opt Options) (connector.Connector, error) {
	switch src.Protocol {
	case "rest":
		cfg, err := restConfig(src, opt)
		if err != nil {
			return nil, err
		}
		return rest.New(cfg)
	}
	return nil, fmt.Errorf("protocol %q is not supported", src.Protocol)
}

func restConfig(src *spec.Source, opt Options) (rest.Config, error) {
	r := src.REST
	cfg := rest.Config{
		Source:           src.Name,
		BaseURL:          r.BaseURL,
		Timeout:          r.Timeout.D(),
		MaxResponseBytes: int(r.MaxResponseBytes),
		HealthPath:       r.HealthPath,
		Headers:          map[string]string{},
		Operations:       map[string]rest.Operation{},
	}
	if u, ok := opt.BaseURLs[src.Name]; ok {
		cfg.BaseURL = u
	}
	if r.Retry != nil {
		cfg.Retry = retry(r.Retry)
	}
	if r.Pool != nil {
		cfg.MaxConns, cfg.MaxIdle = r.Pool.MaxConns, r.Pool.IdleTimeout.D()
	}
	if t := r.TLS; t != nil {
		cfg.TLS = &rest.TLS{CAFile: t.CAFile, CertFile: t.CertFile, KeyFile: t.KeyFile, ServerName: t.ServerName}
	}
	for k, v := range r.Headers {
		cfg.Headers[k] = v
	}
	if a := r.Auth; a != nil {
		switch a.Type {
		case "bearer":
			tok, err := secret(a.Token, opt)
			if err != nil {
				return cfg, fmt.Errorf("auth token: %w", err)
			}
			cfg.Headers["Authorization"] = "Bearer " + tok
		case "basic":
			pw, err := secret(a.Password, opt)
			if err != nil {
				return cfg, fmt.Errorf("auth password: %w", err)
			}
			cfg.Headers["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(a.Username+":"+pw))
		case "header":
			v, err := secret(a.Value, opt)
			if err != nil {
				return cfg, fmt.Errorf("auth header %s: %w", a.Header, err)
			}
			cfg.Headers[a.Header] = v
		}
	}
	for name, op := range r.Operations {
		o := rest.Operation{
			Method: op.Method, Path: op.Path, Query: op.Query, Headers: op.Headers,
			Timeout: op.Timeout.D(), Idempotent: op.Idempotent, MaxResponseBytes: int(op.MaxResponseBytes),
		}
		if op.Retry != nil {
			rr := retry(op.Retry)
			o.Retry = &rr
		}
		cfg.Operations[name] = o
	}
	return cfg, nil
}

func retry(r *spec.Retry) rest.Retry {
	return rest.Retry{Attempts: r.Attempts, Backoff: r.Backoff.D(), MaxBackoff: r.MaxBackoff.D(), OnStatus: r.OnStatus}
}

// secret reads a credential; errors name where it was looked for, never
// what it holds.
func secret(s *spec.Secret, opt Options) (string, error) {
	switch {
	case s == nil:
		return "", errors.New("missing")
	case s.Env != "":
		v, ok := opt.LookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		info, err := os.Stat(s.File)
		if err != nil {
			return "", fmt.Errorf("secret file %s: %w", s.File, errors.Unwrap(err))
		}
		if info.Mode().Perm()&0o004 != 0 {
			return "", fmt.Errorf("secret file %s is readable by everyone: chmod o-r it", s.File)
		}
		b, err := os.ReadFile(s.File)
		if err != nil {
			return "", fmt.Errorf("secret file %s: %w", s.File, errors.Unwrap(err))
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", s.File)
		}
		return v, nil
	}
	return "", errors.New("a secret names env or file")
}
