package main

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/openfsb/fsb/engine/config"
	"github.com/openfsb/fsb/engine/spec"
)

// How `fsb serve` builds its configuration (OPERATING.md):
//
//   - with --config FILE: engine/config's defaults, the file, the FSB_
//     environment overrides; then every flag given explicitly on the command
//     line wins over them (recorded as "flag -addr", so that a validation
//     error names the flag), and DIR, when given, wins over the file's flows;
//   - without: the defaults, then every flag with its value (the flags'
//     defaults are the development defaults: text logs), and DIR. FSB_
//     variables are not read: they override a file.
//
// The demo builds its configuration as a config.Config value (demo.go);
// all three run the same startServer.

// flagKey is a flag of serve that sets a configuration key.
type flagKey struct {
	flag, key string
	value     func(f *serveFlags) string
}

var flagKeys = []flagKey{
	{"addr", "listeners.consumer.addr", func(f *serveFlags) string { return f.addr }},
	{"log-level", "log.level", func(f *serveFlags) string { return f.logLevel }},
	{"log-format", "log.format", func(f *serveFlags) string { return f.logFormat }},
	{"trusted-proxies", "trustedProxies", func(f *serveFlags) string { return f.proxies }},
	{"tls-cert", "listeners.consumer.tls.cert", func(f *serveFlags) string { return f.security.tlsCert }},
	{"tls-key", "listeners.consumer.tls.key", func(f *serveFlags) string { return f.security.tlsKey }},
	{"client-ca", "listeners.consumer.tls.clientCA", func(f *serveFlags) string { return f.security.clientCA }},
	{"test-addr", "listeners.test.addr", func(f *serveFlags) string { return f.security.testAddr }},
	{"access-dir", "access.dir", func(f *serveFlags) string { return f.security.accessDir }},
	{"token-key", "keys.token", func(f *serveFlags) string { return f.security.tokenKey }},
	{"token-issuer", "access.tokenIssuer", func(f *serveFlags) string { return f.security.tokenIssuer }},
	{"token-audience", "access.tokenAudience", func(f *serveFlags) string { return f.security.tokenAudience }},
	{"audit-dir", "audit.dir", func(f *serveFlags) string { return f.security.auditDir }},
	{"audit-key", "keys.audit", func(f *serveFlags) string { return f.security.auditKey }},
	{"audit-config", "audit.config", func(f *serveFlags) string { return f.security.auditConfig }},
	{"subject-key-file", "keys.subject", func(f *serveFlags) string { return f.security.subjectKeyFile }},
	{"admin-addr", "listeners.admin.addr", func(f *serveFlags) string { return f.security.adminAddr }},
	{"admin-token-file", "keys.adminToken", func(f *serveFlags) string { return f.security.adminTokenFile }},
	{"admin-client-ca", "listeners.admin.clientCA", func(f *serveFlags) string { return f.security.adminClientCA }},
}

// serveConfig is the configuration `fsb serve` runs with: file ("" for
// none) with the flags given explicitly (set reports which), or, without a
// file, the defaults with every flag. dir, when not empty, is the flow
// directory. Errors are a spec.ErrorList where the configuration is at
// fault (file:line:col, environment variable or flag).
func serveConfig(file, dir string, f *serveFlags, set func(flag string) bool) (*config.Config, error) {
	var cfg *config.Config
	if file != "" {
		var err error
		if cfg, err = config.Load(file, nil); err != nil {
			return nil, err
		}
	} else {
		cfg = config.Default()
		cfg.Log.Format = "text" // the flag's default: a terminal, not a collector
		set = func(string) bool { return true }
	}
	if err := applyFlags(cfg, f, set); err != nil {
		return nil, err
	}
	if dir != "" {
		if err := cfg.Set("flows", dir, "argument DIR"); err != nil {
			return nil, err
		}
	}
	if file == "" {
		// Flag combinations first, named as flags (-audit-dir needs -audit-key …).
		if err := securityChecks(cfg, keyNamer(cfg)); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// applyFlags sets the keys of the flags set says to apply; an empty value
// leaves the key alone. -access-dir and -audit-dir also enable what they
// name.
func applyFlags(cfg *config.Config, f *serveFlags, set func(string) bool) error {
	var errs []error
	for _, k := range flagKeys {
		v := k.value(f)
		if !set(k.flag) || v == "" {
			continue
		}
		origin := "flag -" + k.flag
		if err := cfg.Set(k.key, v, origin); err != nil {
			errs = append(errs, err)
			continue
		}
		switch k.key {
		case "access.dir":
			errs = append(errs, cfg.Set("access.enabled", "true", origin))
		case "audit.dir":
			errs = append(errs, cfg.Set("audit.enabled", "true", origin))
		}
	}
	return errors.Join(errs...)
}

// keyNamer names a key in an error as the user gave it: the flag that set
// it (-audit-key), else file:line:col and the key, else (without a file)
// the flag that sets it, else the key.
func keyNamer(cfg *config.Config) func(key string) string {
	return func(key string) string {
		p := cfg.Pos(key)
		if f, ok := strings.CutPrefix(p.File, "flag "); ok {
			return f
		}
		if p.Line > 0 || strings.HasPrefix(p.File, "environment ") {
			return p.String() + ": " + key
		}
		if cfg.File == "" { // development: the flag that would set it
			for _, k := range flagKeys {
				if k.key == key {
					return "-" + k.flag
				}
			}
		}
		return key
	}
}

// securityChecks refuses combinations that cannot work, naming keys as n
// does. serveConfig runs it without a file, before config.Validate, which
// checks the same combinations at the key: these messages name the flags.
func securityChecks(cfg *config.Config, n func(string) string) error {
	l, k := cfg.Listeners, cfg.Keys
	switch {
	case (l.Consumer.TLS.Cert == "") != (l.Consumer.TLS.Key == ""):
		return fmt.Errorf("%s and %s go together", n("listeners.consumer.tls.cert"), n("listeners.consumer.tls.key"))
	case !cfg.Access.Enabled && (l.Consumer.TLS.ClientCA != "" || k.Token != ""):
		return fmt.Errorf("%s and %s need %s", n("listeners.consumer.tls.clientCA"), n("keys.token"), n("access.dir"))
	case cfg.Audit.Enabled && (k.Audit == "" || k.Subject == ""):
		return fmt.Errorf("%s needs %s and %s", n("audit.dir"), n("keys.audit"), n("keys.subject"))
	case !cfg.Audit.Enabled && cfg.Audit.Config != "":
		return fmt.Errorf("%s needs %s", n("audit.config"), n("audit.dir"))
	case l.Admin.Addr != "" && !cfg.Access.Enabled && !cfg.Audit.Enabled && !cfg.Metrics.Enabled:
		return fmt.Errorf("%s needs %s or %s (or metrics)", n("listeners.admin.addr"), n("access.dir"), n("audit.dir"))
	case l.Admin.Addr != "" && l.Admin.ClientCA != "" && l.Consumer.TLS.Cert == "":
		return fmt.Errorf("%s needs %s (the admin API then serves TLS)", n("listeners.admin.clientCA"), n("listeners.consumer.tls.cert"))
	case l.Admin.Addr != "" && k.AdminToken == "" && l.Admin.ClientCA == "":
		return fmt.Errorf("%s needs %s or %s", n("listeners.admin.addr"), n("keys.adminToken"), n("listeners.admin.clientCA"))
	case l.Admin.Addr == "" && (k.AdminToken != "" || l.Admin.ClientCA != ""):
		return fmt.Errorf("%s and %s need %s", n("keys.adminToken"), n("listeners.admin.clientCA"), n("listeners.admin.addr"))
	case l.Test.Addr != "" && !cfg.Access.Enabled:
		return fmt.Errorf("%s needs %s", n("listeners.test.addr"), n("access.dir"))
	}
	return nil
}

// flagsSet reports the flags given on the command line.
func flagsSet(fs *flag.FlagSet) func(string) bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return func(name string) bool { return set[name] }
}

// errorsWhere says where the errors of err are, for printErrors: in the
// configuration file (file), in the flows under the flow directory
// (flows), or "" when they are elsewhere or in several places (a flag, the
// environment, the file and the flows).
func errorsWhere(err error, file, flows string) string {
	var errs spec.ErrorList
	if !errors.As(err, &errs) {
		return ""
	}
	inFile, inFlows := file != "", flows != ""
	for _, e := range errs {
		inFile = inFile && e.Pos.File == file
		inFlows = inFlows && underDir(e.Pos.File, flows)
	}
	switch {
	case inFile:
		return file
	case inFlows:
		return "the flows under " + flows
	}
	return ""
}

// underDir reports whether path is dir or inside it.
func underDir(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
