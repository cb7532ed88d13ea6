package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/openfsb/fsb/engine/modules"
	"github.com/openfsb/fsb/engine/reload"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/wasm"
)

var logLevels = []string{"debug", "info", "warn", "error"}

// validate checks the values and how they go together; every error points
// at the key at fault and says what to do.
func (c *Config) validate() spec.ErrorList {
	var errs spec.ErrorList
	add := func(key, format string, args ...any) { errs = append(errs, c.errorf(key, format, args...)) }
	if c.Flows == "" {
		add("flows", "flows is empty: name the flow directory")
	}
	if !slices.Contains(logLevels, c.Log.Level) {
		add("log.level", "log.level %q: use debug, info, warn or error", c.Log.Level)
	}
	if c.Log.Format != "json" && c.Log.Format != "text" {
		add("log.format", "log.format %q: use json or text", c.Log.Format)
	}
	addrs := map[string]string{}
	addr := func(key, a string, required bool) {
		if a == "" {
			if required {
				add(key, "%s is empty: give host:port, e.g. 127.0.0.1:8080", key)
			}
			return
		}
		_, port, err := net.SplitHostPort(a)
		if err != nil || port == "" {
			add(key, "%s %q is not host:port (e.g. 0.0.0.0:8443)", key, a)
			return
		}
		if n, err := strconv.ParseUint(port, 10, 64); err != nil || n > 65535 {
			add(key, "%s %q: the port must be a number from 0 to 65535 (0: any free port)", key, a)
			return
		}
		if other, dup := addrs[a]; dup && port != "0" { // port 0: each gets a free port
			add(key, "%s %q is also %s: each listener needs its own address", key, a, other)
		}
		addrs[a] = key
	}
	l := c.Listeners
	addr("listeners.consumer.addr", l.Consumer.Addr, true)
	addr("listeners.test.addr", l.Test.Addr, false)
	addr("listeners.admin.addr", l.Admin.Addr, false)
	if (l.Consumer.TLS.Cert == "") != (l.Consumer.TLS.Key == "") {
		add("listeners.consumer.tls", "listeners.consumer.tls: cert and key go together: set both or neither")
	}
	if l.Consumer.TLS.ClientCA != "" && !c.Access.Enabled {
		add("listeners.consumer.tls.clientCA", "clientCA is checked by access control: set access.enabled: true, or remove clientCA")
	}
	for i, p := range c.TrustedProxies {
		key := fmt.Sprintf("trustedProxies[%d]", i)
		if _, err := netip.ParsePrefix(p); err != nil {
			if _, err := netip.ParseAddr(p); err != nil {
				add(key, "trusted proxy %q is neither an IP address nor a CIDR (10.0.0.0/8)", p)
			}
		}
	}
	if c.Access.Enabled && c.Access.Dir == "" {
		add("access.enabled", "access is enabled but has no directory: set access.dir or dataDir")
	}
	if c.Keys.Token != "" && !c.Access.Enabled {
		add("keys.token", "keys.token signs access tokens: set access.enabled: true, or remove it")
	}
	if c.Audit.Enabled {
		if c.Audit.Dir == "" {
			add("audit.enabled", "the audit trail is enabled but has no directory: set audit.dir or dataDir")
		}
		if c.Keys.Audit == "" || c.Keys.Subject == "" {
			add("audit.enabled", "the audit trail needs keys.audit (signs checkpoints) and keys.subject (pseudonymises data subjects)")
		}
	} else if c.Audit.Config != "" {
		add("audit.config", "audit.config configures the audit trail: set audit.enabled: true, or remove it")
	}
	if l.Test.Addr != "" && !c.Access.Enabled {
		add("listeners.test.addr", "the test listener serves connection tests of registered consumers: set access.enabled: true")
	}
	if l.Admin.Addr != "" {
		if c.Keys.AdminToken == "" && l.Admin.ClientCA == "" {
			add("listeners.admin.addr", "the admin listener needs keys.adminToken or listeners.admin.clientCA: it is never open")
		}
		if !c.Access.Enabled && !c.Audit.Enabled && !c.Metrics.Enabled {
			add("listeners.admin.addr", "the admin listener has nothing to serve: enable access, audit or metrics")
		}
	} else {
		if c.Keys.AdminToken != "" {
			add("keys.adminToken", "keys.adminToken without listeners.admin.addr: set the admin address or remove it")
		}
		if l.Admin.ClientCA != "" {
			add("listeners.admin.clientCA", "clientCA without listeners.admin.addr: set the admin address or remove it")
		}
	}
	if l.Admin.ClientCA != "" && l.Consumer.TLS.Cert == "" {
		add("listeners.admin.clientCA", "admin client certificates need TLS: set listeners.consumer.tls.cert and key (the admin listener then serves TLS)")
	}
	lim := c.Limits
	if lim.MaxConcurrent < 1 {
		add("limits.maxConcurrent", "limits.maxConcurrent must be at least 1")
	}
	if lim.MaxQueue < 0 {
		add("limits.maxQueue", "limits.maxQueue must not be negative")
	}
	if lim.MaxRequestBody < 1024 {
		add("limits.maxRequestBody", "limits.maxRequestBody must be at least 1KiB")
	}
	if lim.ShutdownTimeout <= 0 {
		add("limits.shutdownTimeout", "limits.shutdownTimeout must be positive, e.g. 10s")
	}
	if lim.GOGC < -1 {
		add("limits.gogc", "limits.gogc: -1 (off), 0 (keep Go's default or $GOGC) or a percentage")
	}
	if c.Metrics.Enabled && !strings.HasPrefix(c.Metrics.Path, "/") {
		add("metrics.path", "metrics.path %q must start with /", c.Metrics.Path)
	}
	if c.Tracing.Enabled && c.Tracing.Endpoint == "" {
		add("tracing.enabled", "tracing is enabled but has no endpoint: set tracing.endpoint (OTLP/HTTP, e.g. http://otel-collector:4318)")
	}
	if r := c.Tracing.SampleRatio; r <= 0 || r > 1 {
		add("tracing.sampleRatio", "tracing.sampleRatio must be above 0 and at most 1")
	}
	if b := c.Breaker; b.Enabled {
		if b.ConsecutiveFailures < 1 {
			add("breaker.consecutiveFailures", "breaker.consecutiveFailures must be at least 1")
		}
		if b.FailureRatio <= 0 || b.FailureRatio > 1 {
			add("breaker.failureRatio", "breaker.failureRatio must be above 0 and at most 1")
		}
		if b.OpenFor <= 0 {
			add("breaker.openFor", "breaker.openFor must be positive, e.g. 30s")
		}
	}
	return errs
}

// CheckOptions is what Check needs from the command that runs it.
type CheckOptions struct {
	// LookupEnv reads the secrets sources and plugins name (nil: os.LookupEnv).
	LookupEnv func(string) (string, bool)
	// Connector configures the native connector process of file sources
	// (sources.Options.Connector); nil when the flows have none.
	Sources sources.Options
	// ReadFiles is the command's own reading of the files the configuration
	// names — the function serving runs (key formats and lengths, the audit
	// configuration) — so that Check applies every rule serving does. See
	// CheckFiles.
	ReadFiles func(*Config) []*KeyError
}

// KeyError is a file a key names that does not serve (a key too short, not
// PEM …): CheckFiles reports it at the key's file:line:col.
type KeyError struct {
	Key string // listeners.consumer.tls.cert, keys.adminToken …
	Err error
}

func (e *KeyError) Error() string { return e.Key + ": " + e.Err.Error() }
func (e *KeyError) Unwrap() error { return e.Err }

// Check is `fsb serve --check`: with the configuration already loaded and
// valid (Load), it resolves the listeners' hosts, reads every file the
// configuration names (CheckFiles with opt.ReadFiles) and loads the flow
// directory exactly as serving would — documents, compilation, plugins and
// their secrets, sources and theirs — then closes everything. Nothing
// listens, and nothing is written: plugins compile without the on-disk
// cache (a temporary one, removed). Errors are a spec.ErrorList
// (configuration and flow errors, each at its file:line:col) or a plain
// error.
func (c *Config) Check(ctx context.Context, opt CheckOptions) error {
	var errs spec.ErrorList
	errs = append(errs, c.checkListeners()...)
	if err := c.CheckFiles(opt.ReadFiles); err != nil {
		var ferrs spec.ErrorList
		if !errors.As(err, &ferrs) {
			return err
		}
		errs = append(errs, ferrs...)
	}
	cache, err := os.MkdirTemp("", "fsb-check-wasm-")
	if err != nil {
		return errors.Join(errs.Err(), err)
	}
	defer os.RemoveAll(cache)
	host, err := wasm.NewHost(ctx, wasm.HostConfig{CacheDir: cache})
	if err != nil {
		return errors.Join(errs.Err(), err)
	}
	defer host.Close(context.Background())
	sopt := opt.Sources
	if opt.LookupEnv != nil {
		sopt.LookupEnv = opt.LookupEnv
	}
	s, err := reload.Load(ctx, reload.Options{Dir: c.Flows, Host: host, Sources: sopt, Modules: modules.Options{LookupEnv: sopt.LookupEnv}})
	var ferrs spec.ErrorList
	if err == nil {
		s.Release()
		<-s.Closed()
	} else if errors.As(err, &ferrs) {
		errs, err = append(errs, ferrs...), nil
	}
	errs.Sort()
	if err != nil {
		return errors.Join(errs.Err(), err)
	}
	return errs.Err()
}

// checkListeners resolves each listener's address as serving will
// (net.ResolveTCPAddr: a host that is no IP address is looked up).
func (c *Config) checkListeners() spec.ErrorList {
	var errs spec.ErrorList
	l := c.Listeners
	for _, a := range []struct{ key, addr string }{
		{"listeners.consumer.addr", l.Consumer.Addr}, {"listeners.test.addr", l.Test.Addr}, {"listeners.admin.addr", l.Admin.Addr},
	} {
		if a.addr == "" {
			continue
		}
		if _, err := net.ResolveTCPAddr("tcp", a.addr); err != nil {
			host, _, _ := net.SplitHostPort(a.addr)
			errs = append(errs, c.errorf(a.key, "%s %q: cannot listen there (%v): give an IP address of this host or a name it resolves", a.key, host, err))
		}
	}
	return errs
}

// How each key's file is made, for an error about a missing one.
var makeFile = map[string]string{
	"keys.token":                      "create it with `fsb audit keygen -out %s` (an Ed25519 key, mode 0600)",
	"keys.audit":                      "create it with `fsb audit keygen -out %s` (an Ed25519 key, mode 0600; note the public key it prints)",
	"keys.subject":                    "create it with `fsb audit secret -out %s` (a random secret, mode 0600)",
	"keys.adminToken":                 "create it with `fsb audit secret -out %s` (a random token, mode 0600)",
	"audit.config":                    "write it (engine/gateway/AUDIT.md) or remove audit.config",
	"listeners.consumer.tls.cert":     "give the server certificate (PEM) there",
	"listeners.consumer.tls.key":      "give the server certificate's private key (PEM) there",
	"listeners.consumer.tls.clientCA": "give the CA bundle (PEM) consumer certificates chain to there",
	"listeners.admin.clientCA":        "give the CA bundle (PEM) admin certificates chain to there",
}

// missing describes a file a key names that does not exist: its absolute
// path and how to make one.
func missing(key, f string) string {
	abs, err := filepath.Abs(f)
	if err != nil {
		abs = f
	}
	how := makeFile[key]
	if strings.Contains(how, "%s") {
		how = fmt.Sprintf(how, abs)
	}
	return fmt.Sprintf("%s: %s does not exist: %s", key, abs, how)
}

// CheckFiles reads the files the configuration names: every one exists
// (else its absolute path and how to make it), key files are files and
// private (mode 0600), the TLS pair loads, CA files hold certificates, the
// flow directory is a directory; then read, when not nil — the command's
// own reading, the function serving runs — for the keys not at fault
// already. `fsb serve` runs it before it opens anything, --check through
// Check: both apply the same rules. Errors are a spec.ErrorList, each at
// its key.
func (c *Config) CheckFiles(read func(*Config) []*KeyError) error {
	var errs spec.ErrorList
	bad := map[string]bool{}
	add := func(key, format string, args ...any) {
		bad[key] = true
		errs = append(errs, c.errorf(key, format, args...))
	}
	exists := func(key, f string) (os.FileInfo, bool) {
		fi, err := os.Stat(f)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			add(key, "%s", missing(key, f))
		case err != nil:
			add(key, "%s: %v", key, err)
		}
		return fi, err == nil
	}
	t := c.Listeners.Consumer.TLS
	if t.Cert != "" && t.Key != "" {
		_, okc := exists("listeners.consumer.tls.cert", t.Cert)
		_, okk := exists("listeners.consumer.tls.key", t.Key)
		if okc && okk {
			if _, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
				add("listeners.consumer.tls.cert", "listeners.consumer.tls: %v", err)
			}
		}
	}
	for _, kf := range [][2]string{{"listeners.admin.clientCA", c.Listeners.Admin.ClientCA}, {"listeners.consumer.tls.clientCA", t.ClientCA}} {
		key, f := kf[0], kf[1]
		if f == "" {
			continue
		}
		if _, ok := exists(key, f); !ok {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			add(key, "%s: %v", key, err)
		} else if !x509.NewCertPool().AppendCertsFromPEM(b) {
			add(key, "%s: %s holds no PEM certificate", key, f)
		}
	}
	for _, kf := range [][2]string{{"keys.adminToken", c.Keys.AdminToken}, {"keys.audit", c.Keys.Audit}, {"keys.subject", c.Keys.Subject}, {"keys.token", c.Keys.Token}} {
		key, f := kf[0], kf[1]
		if f == "" {
			continue
		}
		fi, ok := exists(key, f)
		switch {
		case !ok:
		case fi.IsDir():
			add(key, "%s: %s is a directory, not a key file", key, f)
		case fi.Mode().Perm()&0o077 != 0:
			add(key, "%s: %s may be read by other users (mode %v): chmod 600 it", key, f, fi.Mode().Perm())
		}
	}
	if f := c.Audit.Config; f != "" {
		exists("audit.config", f)
	}
	if fi, err := os.Stat(c.Flows); err != nil || !fi.IsDir() {
		add("flows", "flows: %s is not a directory", c.Flows)
	}
	if read != nil {
		for _, e := range read(c) {
			if !bad[e.Key] {
				add(e.Key, "%s", e.Error())
			}
		}
	}
	errs.Sort()
	return errs.Err()
}

func sortStrings(s []string) { sort.Strings(s) }
