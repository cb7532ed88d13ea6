package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/openfsb/fsb/cmd/fsb/internal/mocksrc"
	"github.com/openfsb/fsb/engine/config"
	"github.com/openfsb/fsb/engine/sources"
)

// The demo is `fsb serve` with a demo configuration (demoServeConfig, an
// engine/config value run by startServer as `fsb serve --config` runs a
// file) with everything on — TLS with client certificates, access
// enforcement, the audit trail, a test listener and the admin API with
// metrics — in front of mock sources, with a demo consumer onboarded at
// start through the admin API exactly as `fsb consumer` does it.
//
// To add a kind of source to the demo (SOAP, SFTP …) from its own file, in
// an init function: append a starter to demoSources, the defaults of its
// environment variables to demoEnvDefaults, a grant per new flow to
// demoGrants (onboarded and connection-tested at start: a flow without one
// refuses every call) and the calls to print to demoCalls (demo_print.go).

// demoSourceStarter starts mock sources and points the named Source
// documents at them through opt (BaseURLs, or anything else Options has).
// It returns how to stop them.
type demoSourceStarter func(dataDir string, log *slog.Logger, opt *sources.Options) (stop func(), err error)

var demoSources = []demoSourceStarter{startRESTMocks}

// startRESTMocks starts the enterprise, person and VAT registers.
func startRESTMocks(dataDir string, log *slog.Logger, opt *sources.Options) (func(), error) {
	mocks, err := mocksrc.Start(dataDir, log)
	if err != nil {
		return nil, err
	}
	for _, n := range mocks.Names() {
		opt.BaseURLs[n] = mocks.URL(n)
	}
	return func() { _ = mocks.Close() }, nil
}

// demoConfig is where the demo finds its files and keeps its state.
type demoConfig struct {
	flows string // the demo flows
	data  string // the mock sources' synthetic data
	pki   string // the demo CA and certificates (demo_pki.go)
	// dir holds the registry, the audit trail and their keys; "" makes a
	// fresh one under os.TempDir that is removed when the demo stops.
	dir string
}

// demoOwnedFlags are serve's flags that the demo sets itself, from -pki and
// -data-dir; -admin-addr and -test-addr stay the user's.
var demoOwnedFlags = []string{"tls-cert", "tls-key", "client-ca", "access-dir", "token-key", "token-issuer",
	"token-audience", "audit-dir", "audit-key", "subject-key-file", "admin-token-file", "admin-client-ca"}

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "pki" {
		return cmdDemoPKI(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	setDefault(fs, "admin-addr", "127.0.0.1:8081")
	setDefault(fs, "test-addr", "127.0.0.1:0")
	var c demoConfig
	fs.StringVar(&c.flows, "flows", "flows", "the demo flow directory")
	fs.StringVar(&c.data, "data", "testdata/demo", "the demo sources' synthetic data")
	fs.StringVar(&c.pki, "pki", demoPKIDir, "the demo CA, server and consumer certificates (written by fsb demo pki)")
	fs.StringVar(&c.dir, "data-dir", "", "keep the registry, the audit trail and their keys here, across runs (default: a fresh directory under "+os.TempDir()+", removed when the demo stops)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: fsb demo [flags]
       fsb demo pki [-out DIR] [-years N]

Starts mock authentic sources and serves the demo flows against them over TLS
with client certificates, access enforcement and the audit trail, with a demo
consumer onboarded for every demo service. Run it from the repository root
(or point -flows, -data and -pki there).`)
		shown := flag.NewFlagSet("demo", flag.ContinueOnError)
		shown.SetOutput(stderr)
		fs.VisitAll(func(fl *flag.Flag) {
			if !slices.Contains(demoOwnedFlags, fl.Name) {
				shown.Var(fl.Value, fl.Name, fl.Usage)
				shown.Lookup(fl.Name).DefValue = fl.DefValue
			}
		})
		shown.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var owned []string
	fs.Visit(func(fl *flag.Flag) {
		if slices.Contains(demoOwnedFlags, fl.Name) {
			owned = append(owned, "-"+fl.Name)
		}
	})
	if len(owned) > 0 {
		fmt.Fprintf(stderr, "fsb demo: the demo sets %s itself (from -pki and -data-dir); fsb serve takes your own\n", strings.Join(owned, ", "))
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "fsb demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if _, err := f.logger(stderr); err != nil {
		fmt.Fprintln(stderr, "fsb demo:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDemo(ctx, f, c, stdout, stderr)
}

// setDefault changes a registered flag's default, as -h shows it too.
func setDefault(fs *flag.FlagSet, name, value string) {
	_ = fs.Set(name, value)
	fs.Lookup(name).DefValue = value
}

// runDemo runs the demo until ctx ends. f.addr, f.logLevel and the
// security flags -admin-addr and -test-addr are the user's; the demo sets
// the other security flags.
func runDemo(ctx context.Context, f serveFlags, c demoConfig, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintln(stderr, "fsb demo:", err)
		return 1
	}
	// The demo's own requests at start (onboarding, connection tests) are
	// logged only with -log-level debug; then the chosen level applies.
	var level slog.LevelVar
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fail(fmt.Errorf("-log-level: %w", err))
	}
	chosen := level.Level()
	if chosen > slog.LevelDebug {
		level.Set(max(chosen, slog.LevelWarn))
	}
	log, err := f.newLogger(stderr, &level) // -log-format
	if err != nil {
		return fail(err)
	}

	pkiNotAfter, err := checkDemoPKI(c.pki, time.Now())
	if err != nil {
		return fail(err)
	}
	fresh := c.dir == ""
	if fresh {
		if c.dir, err = os.MkdirTemp("", "openfsb-demo-"); err != nil {
			return fail(err)
		}
		defer os.RemoveAll(c.dir) // on the way out of a failed start
	} else if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fail(err)
	}
	keys, err := ensureDemoKeys(c.dir)
	if err != nil {
		return fail(err)
	}

	opt := sources.Options{BaseURLs: map[string]string{}, LookupEnv: demoEnv}
	for _, start := range demoSources {
		stop, err := start(c.data, log, &opt)
		if err != nil {
			return fail(fmt.Errorf("%w\n(run it from the repository root, or pass -data)", err))
		}
		defer stop()
	}
	cfg, err := demoServeConfig(f, c, keys)
	if err != nil {
		printErrors(stderr, err, "the demo configuration")
		return 1
	}
	srv, err := startServer(cfg, serveOptions{sources: opt, log: log})
	if err != nil {
		printErrors(stderr, err, c.flows) // flow errors with their source lines
		return 1
	}
	admin := demoAdmin{url: "http://" + srv.adminAddr, tokenFile: keys.adminToken, metricsPath: cfg.Metrics.Path}
	ob, err := onboardDemo(admin, c.pki, "https://"+srv.testAddr, keys.auditPub)
	if err != nil {
		stopped, cancel := context.WithCancel(ctx)
		cancel()
		srv.wait(stopped, log)
		return fail(fmt.Errorf("onboarding the demo consumer: %w", err))
	}
	level.Set(chosen)
	printDemo(stdout, demoBanner{
		addr: srv.addr, testAddr: srv.testAddr, sources: opt.BaseURLs, pki: c.pki, pkiNotAfter: pkiNotAfter,
		dir: c.dir, fresh: fresh, admin: admin, auditPub: keys.auditPub, onboarding: ob,
	})
	code := srv.wait(ctx, log)
	if fresh {
		if err := os.RemoveAll(c.dir); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stderr, "removed the demo data directory %s\n", c.dir)
	}
	return code
}

// demoServeConfig is the demo's configuration: what `fsb serve --config`
// reads from a file, built as a value. The demo runs it with startServer,
// as serve does: TLS with the demo PKI, access enforcement and the audit
// trail in the data directory, a test listener and the admin API (with
// metrics) on loopback; hot reload watches the demo flows. f's -addr,
// -log-*, -trusted-proxies, -admin-addr and -test-addr are the user's.
func demoServeConfig(f serveFlags, c demoConfig, keys demoKeys) (*config.Config, error) {
	cfg := config.Default()
	cfg.File = "the demo configuration" // errors name it (flows and keys are paths already)
	cfg.Flows = c.flows                 // no dataDir: the WASM compilation cache stays the user's, across fresh demo directories
	cfg.Listeners.Consumer.Addr = f.addr
	cfg.Listeners.Consumer.TLS = config.TLS{Cert: filepath.Join(c.pki, demoServerCertFile), Key: filepath.Join(c.pki, demoServerKeyFile),
		ClientCA: filepath.Join(c.pki, demoCAFile)}
	cfg.Listeners.Test.Addr = orDefault(f.security.testAddr, "127.0.0.1:0")
	cfg.Listeners.Admin.Addr = orDefault(f.security.adminAddr, "127.0.0.1:8081")
	cfg.Keys = config.Keys{Audit: keys.audit, Subject: keys.subject, AdminToken: keys.adminToken}
	cfg.Access.Enabled, cfg.Access.Dir = true, filepath.Join(c.dir, "access")
	cfg.Audit.Enabled, cfg.Audit.Dir = true, filepath.Join(c.dir, "audit")
	cfg.Log.Level, cfg.Log.Format = f.logLevel, orDefault(f.logFormat, "text")
	if err := applyFlags(cfg, &f, func(name string) bool { return name == "trusted-proxies" }); err != nil {
		return nil, err
	}
	return cfg, cfg.Validate()
}

// demoKeys are the files of a demo data directory that hold keys, made on
// its first run (like fsb audit keygen and fsb audit secret do) and kept.
type demoKeys struct {
	audit, subject, adminToken string // file names
	auditPub                   string // hex
}

func ensureDemoKeys(dir string) (demoKeys, error) {
	k := demoKeys{audit: filepath.Join(dir, "audit.key"), subject: filepath.Join(dir, "subject.key"), adminToken: filepath.Join(dir, "admin.token")}
	for _, g := range []struct{ file, cmd string }{{k.audit, "keygen"}, {k.subject, "secret"}, {k.adminToken, "secret"}} {
		if _, err := os.Stat(g.file); err == nil {
			continue
		} else if !errors.Is(err, os.ErrNotExist) {
			return k, err
		}
		var out, errb strings.Builder
		if cmdAudit([]string{g.cmd, "-out", g.file}, &out, &errb) != 0 {
			return k, fmt.Errorf("fsb audit %s -out %s: %s", g.cmd, g.file, strings.TrimSpace(errb.String()))
		}
	}
	key, err := loadEd25519Key(k.audit)
	if err != nil {
		return k, err
	}
	k.auditPub = fmt.Sprintf("%x", key.Public())
	return k, nil
}

// DemoMaskKey is the mask plugin's HMAC key in the demo when
// FSB_DEMO_MASK_KEY is not set (flows/plugins.yaml). It is public: demo
// pseudonyms protect nothing.
const DemoMaskKey = "demo-only-not-a-secret"

// demoEnvDefaults are the demo's values of the environment variables its
// flows read secrets from, used when they are not set. All public.
var demoEnvDefaults = map[string]string{"FSB_DEMO_MASK_KEY": DemoMaskKey}

// demoEnv is the environment with the demo's defaults for what is unset.
func demoEnv(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok {
		return v, ok
	}
	v, ok := demoEnvDefaults[name]
	return v, ok
}
