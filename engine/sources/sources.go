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

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/rest"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/plugin"
	"github.com/openfsb/fsb/engine/spec"
)

// Options adjust how sources are opened.
type Options struct {
	// BaseURLs replaces the baseUrl of the named sources (the demo points
	// them at its mock servers this way): a REST baseUrl, a SOAP endpoint,
	// or for a file source ftp://host:port or sftp://host:port, whose
	// hostKey query parameters, when given, replace the pinned host keys
	// (file.go).
	BaseURLs map[string]string
	// Getenv reads environment variables (default os.Getenv via LookupEnv).
	LookupEnv func(string) (string, bool)
	// Plugins are the loaded modules by Plugin document name
	// (engine/modules): a soap source's codec is one of them.
	Plugins map[string]flow.Plugin
	// Connector configures the native connector process that file sources
	// (ftp, sftp) reach their servers through (file.go): cmd/fsb gives
	// plugin.Self running `fsb connector`. It is called once, only when
	// the set has a file source; one process serves them all.
	Connector func() (plugin.Config, error)

	files *fileTransports // set by Open
}

// Open builds one connector per source. On error, connectors opened so far
// are closed.
func Open(set *spec.Set, opt Options) (map[string]connector.Connector, error) {
	if opt.LookupEnv == nil {
		opt.LookupEnv = os.LookupEnv
	}
	opt.files = &fileTransports{config: opt.Connector}
	conns := map[string]connector.Connector{}
	var errs []error
	for _, name := range set.SourceNames() {
		c, err := open(set, set.Sources[name], opt)
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

func open(set *spec.Set, src *spec.Source, opt Options) (connector.Connector, error) {
	switch src.Protocol {
	case "rest":
		cfg, err := restConfig(src, opt)
		if err != nil {
			return nil, err
		}
		return rest.New(cfg)
	case "soap":
		return openSOAP(set, src, opt) // soap.go
	case "ftp", "sftp":
		return openFile(set, src, opt) // file.go
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
	if err := authHeaders(r.Auth, opt, cfg.Headers); err != nil {
		return cfg, err
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

// authHeaders reads the credentials of an auth block (rest and soap
// sources) into the headers h.
func authHeaders(a *spec.Auth, opt Options, h map[string]string) error {
	if a == nil {
		return nil
	}
	switch a.Type {
	case "bearer":
		tok, err := a.Token.Read(opt.LookupEnv)
		if err != nil {
			return fmt.Errorf("auth token: %w", err)
		}
		h["Authorization"] = "Bearer " + tok
	case "basic":
		pw, err := a.Password.Read(opt.LookupEnv)
		if err != nil {
			return fmt.Errorf("auth password: %w", err)
		}
		h["Authorization"] = "Basic " + base64.StdEncoding.EncodeToString([]byte(a.Username+":"+pw))
	case "header":
		v, err := a.Value.Read(opt.LookupEnv)
		if err != nil {
			return fmt.Errorf("auth header %s: %w", a.Header, err)
		}
		h[a.Header] = v
	}
	return nil
}
