package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/catalog"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/metrics"
	"github.com/openfsb/fsb/engine/modules"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/spec"
	"github.com/openfsb/fsb/engine/wasm"
)

// serveFlags are the flags serve and demo share.
type serveFlags struct {
	addr      string
	logLevel  string
	logFormat string // text or json
	proxies   string
	security  securityFlags // access, audit, TLS and admin: all off unless set
}

func (f *serveFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "consumer listener address")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error (debug logs every source call)")
	fs.StringVar(&f.logFormat, "log-format", "text", "text (key=value) or json (one JSON object a line, for log collectors)")
	fs.StringVar(&f.proxies, "trusted-proxies", "", "comma-separated IPs/CIDRs allowed to set X-Forwarded-For")
	f.security.register(fs)
}

func (f *serveFlags) logger(w io.Writer) (*slog.Logger, error) {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	return f.newLogger(w, lvl)
}

// newLogger is a logger in the -log-format at level l.
func (f *serveFlags) newLogger(w io.Writer, l slog.Leveler) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: l}
	switch f.logFormat {
	case "", "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format: %q is neither text nor json", f.logFormat)
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fsb serve [flags] DIR\n\nServes the flows under DIR, calling the sources they declare.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	log, err := f.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "fsb serve:", err)
		return 2
	}
	set, plans := load(fs.Arg(0), stderr)
	if plans == nil {
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := start(set, plans, sources.Options{}, f, log)
	if err != nil {
		fmt.Fprintln(stderr, "fsb serve:", err)
		return 1
	}
	fmt.Fprintf(stdout, "serving %s on %s://%s\n", plural(len(plans), "flow"), srv.scheme, srv.addr)
	if srv.testAddr != "" {
		fmt.Fprintf(stdout, "test environment on %s://%s\n", srv.scheme, srv.testAddr)
	}
	if srv.adminAddr != "" {
		fmt.Fprintf(stdout, "admin API on %s\n", srv.adminAddr)
	}
	return srv.wait(ctx, log)
}

// server is a running gateway with its connectors, and the optional test
// listener and admin API.
type server struct {
	gw        *gateway.Gateway
	addr      string
	testAddr  string // "" without a test listener
	adminAddr string // "" without the admin API
	scheme    string // http or https
	apps      []*fiber.App
	errc      chan error
	close     func()
}

// tuneGC sets the garbage collector for a gateway unless GOGC says
// otherwise: the live heap is small (plans, pools) while every request
// allocates, so the default GOGC=100 collects several hundred times a second
// under load. 400 trades a few MiB of heap for ~15% more requests/s.
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// start opens the sources, builds the gateway and listens.
func start(set *spec.Set, plans map[string]*flow.Plan, opt sources.Options, f serveFlags, log *slog.Logger) (*server, error) {
	tuneGC()
	closeAll := func() {}
	var plugins map[string]flow.Plugin
	if len(set.Plugins) > 0 {
		host, err := wasm.NewHost(context.Background(), wasm.HostConfig{Log: log})
		if err != nil {
			return nil, err
		}
		closeAll = func() { _ = host.Close(context.Background()) }
		if plugins, err = modules.Load(context.Background(), host, set, modules.Options{LookupEnv: opt.LookupEnv}); err != nil {
			closeAll()
			return nil, err
		}
	}
	opt.Plugins = plugins // plugins first: a soap source's codec is one
	if opt.Connector == nil {
		opt.Connector = connectorConfig(log) // file sources' transports: `fsb connector` (connector.go)
	}
	conns, err := sources.Open(set, opt)
	if err != nil {
		closeAll()
		return nil, err
	}
	closePlugins := closeAll
	closeAll = func() { sources.Close(conns); closePlugins() }
	var proxies []string
	for _, p := range strings.Split(f.proxies, ",") {
		if p = strings.TrimSpace(p); p != "" {
			proxies = append(proxies, p)
		}
	}
	sec, err := f.security.open(log)
	if err != nil {
		closeAll()
		return nil, err
	}
	closeSources := closeAll
	closeAll = func() { sec.close(); closeSources() }
	var observer flow.Observer = gateway.CallLogger{Log: log}
	var reqMetrics gateway.RequestMetrics // nil: requests not counted
	if sec.admin != nil {
		sec.admin.SetServices(servicesOf(plans)) // legal bases are submitted for these services only
		// Metrics only where they can be read: the admin listener.
		m := metrics.New(metrics.Options{})
		m.SetPlugins(func() map[string]flow.Plugin { return plugins }) // WASM pool gauges
		observer, reqMetrics = metrics.Observers(observer, m), m
		sec.admin.SetMetrics(m.Handler())
	}
	cfg := gateway.Config{
		Plans:          plans,
		Runtime:        &flow.Runtime{Conns: conns, Plugins: plugins, Observer: observer, Log: log},
		Log:            log,
		TrustedProxies: proxies,
		Access:         sec.registry,
		Audit:          sec.audit,
		Catalog:        catalog.New(set, plans), // the service catalogue, with source titles and test examples
		Metrics:        reqMetrics,
	}
	gw := gateway.New(cfg)
	s := &server{gw: gw, scheme: "http", errc: make(chan error, 4), close: closeAll}
	if sec.tls != nil {
		s.scheme = "https"
	}
	listen := func(addr string, app *fiber.App, tlsConf *tls.Config) (string, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", fmt.Errorf("listen on %s: %w", addr, err)
		}
		if tlsConf != nil {
			ln = tls.NewListener(ln, tlsConf)
		}
		s.apps = append(s.apps, app)
		go func() { s.errc <- app.Listener(ln) }()
		return ln.Addr().String(), nil
	}
	fail := func(err error) (*server, error) {
		for _, app := range s.apps {
			_ = app.Shutdown()
		}
		closeAll()
		return nil, err
	}
	if s.addr, err = listen(f.addr, gw.App(), sec.tls); err != nil {
		return fail(err)
	}
	if f.security.testAddr != "" {
		tcfg := cfg
		tcfg.Environment = access.Test
		tcfg.Metrics = nil // fsb_requests_total counts production calls only (the source calls are counted)
		if s.testAddr, err = listen(f.security.testAddr, gateway.New(tcfg).App(), sec.tls); err != nil {
			return fail(err)
		}
	}
	if sec.admin != nil {
		if s.adminAddr, err = listen(f.security.adminAddr, sec.admin.App(), sec.adminTLS); err != nil {
			return fail(err)
		}
	}
	return s, nil
}

// wait serves until ctx ends (Ctrl-C), then shuts down gracefully.
func (s *server) wait(ctx context.Context, log *slog.Logger) int {
	defer s.close()
	select {
	case err := <-s.errc:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			log.Error("server stopped", "err", err)
			return 1
		}
		return 0
	case <-ctx.Done():
	}
	log.Info("shutting down")
	code := 0
	for _, app := range s.apps {
		if err := app.ShutdownWithTimeout(10 * time.Second); err != nil {
			log.Error("shutdown", "err", err)
			code = 1
		}
	}
	return code
}

// securityFlags switch on TLS, access enforcement, the audit trail, the
// test listener and the admin API. Every one is off unless set, so that
// `fsb demo` and `fsb serve DIR` without them serve as before.
type securityFlags struct {
	tlsCert, tlsKey, clientCA string
	testAddr                  string
	accessDir                 string
	tokenKey, tokenIssuer     string
	tokenAudience             string
	auditDir, auditKey        string
	subjectKeyFile            string
	auditConfig               string // retention per service, pruning, free space (audit.go)
	adminAddr, adminTokenFile string
	adminClientCA             string
}

func (f *securityFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.tlsCert, "tls-cert", "", "serve the consumer listener over TLS with this certificate (PEM); client certificates are requested, not required")
	fs.StringVar(&f.tlsKey, "tls-key", "", "the private key of -tls-cert (PEM)")
	fs.StringVar(&f.clientCA, "client-ca", "", "CA bundle (PEM) that consumer client certificates must chain to")
	fs.StringVar(&f.testAddr, "test-addr", "", "also serve the flows as test endpoints (connection tests) on this address")
	fs.StringVar(&f.accessDir, "access-dir", "", "enforce access with the consumer registry stored in this directory (Badger)")
	fs.StringVar(&f.tokenKey, "token-key", "", "Ed25519 private key (PEM, PKCS#8) that signs OAuth2 access tokens; without it no token is issued")
	fs.StringVar(&f.tokenIssuer, "token-issuer", "openfsb", "iss of issued access tokens")
	fs.StringVar(&f.tokenAudience, "token-audience", "openfsb-consumer", "aud of issued access tokens")
	fs.StringVar(&f.auditDir, "audit-dir", "", "record every consumer call in the audit trail stored in this directory (Badger)")
	fs.StringVar(&f.auditKey, "audit-key", "", "Ed25519 private key (PEM, PKCS#8) that signs audit checkpoints; required with -audit-dir")
	fs.StringVar(&f.auditConfig, "audit-config", "", "audit configuration file (YAML): retention and stored bodies per service, pruning interval, minimum free space (engine/gateway/AUDIT.md)")
	fs.StringVar(&f.subjectKeyFile, "subject-key-file", "", "secret (at least 32 bytes) that pseudonymises data subjects in audit records; required with -audit-dir")
	fs.StringVar(&f.adminAddr, "admin-addr", "", "serve the admin API on this address (never on the consumer listener)")
	fs.StringVar(&f.adminTokenFile, "admin-token-file", "", "file (mode 0600) holding the admin API bearer token")
	fs.StringVar(&f.adminClientCA, "admin-client-ca", "", "also admit admin client certificates chaining to this CA (PEM); serves the admin API over TLS with -tls-cert")
}

// security is what securityFlags opened.
type security struct {
	registry *access.Registry
	audit    *audit.Store
	tls      *tls.Config
	admin    *gateway.Admin
	adminTLS *tls.Config

	stopPruner func() // nil unless the audit configuration sets a retention
}

func (s *security) close() {
	if s.stopPruner != nil {
		s.stopPruner()
	}
	if s.audit != nil {
		_ = s.audit.Close() // signs a last checkpoint
	}
	if s.registry != nil {
		_ = s.registry.Close()
	}
}

// open opens what the flags ask for; on error nothing stays open.
func (f *securityFlags) open(log *slog.Logger) (sec *security, err error) {
	sec = &security{}
	opened := sec // a failing return sets sec to nil first
	defer func() {
		if err != nil {
			opened.close()
			sec = nil
		}
	}()
	if (f.tlsCert == "") != (f.tlsKey == "") {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	var clientCAs *x509.CertPool
	if f.clientCA != "" {
		if clientCAs, err = loadCertPool(f.clientCA); err != nil {
			return nil, fmt.Errorf("-client-ca: %w", err)
		}
	}
	if f.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(f.tlsCert, f.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert: %w", err)
		}
		// RequestClientCert, not RequireAndVerify: access verifies the chain
		// itself, so a wrong certificate gets a problem document, not an alert.
		sec.tls = &tls.Config{Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	}
	if f.accessDir != "" {
		if clientCAs == nil {
			log.Warn("access enforcement without -client-ca: no client certificate can be registered or accepted")
		}
		if sec.tls == nil {
			log.Warn("access enforcement over plain HTTP (no -tls-cert): consumers cannot present certificates, and tokens travel in clear")
		}
		opts := access.Options{ClientCAs: clientCAs, Logger: log}
		if f.tokenKey != "" {
			key, err := loadEd25519Key(f.tokenKey)
			if err != nil {
				return nil, fmt.Errorf("-token-key: %w", err)
			}
			opts.Tokens = access.TokenConfig{Issuer: f.tokenIssuer, Audience: f.tokenAudience, Key: key}
		}
		if sec.registry, err = access.Open(f.accessDir, opts); err != nil {
			return nil, fmt.Errorf("-access-dir: %w", err)
		}
	} else if f.clientCA != "" || f.tokenKey != "" {
		return nil, errors.New("-client-ca and -token-key need -access-dir")
	}
	if f.auditDir != "" {
		if f.auditKey == "" || f.subjectKeyFile == "" {
			return nil, errors.New("-audit-dir needs -audit-key and -subject-key-file")
		}
		key, err := loadEd25519Key(f.auditKey)
		if err != nil {
			return nil, fmt.Errorf("-audit-key: %w", err)
		}
		sk, err := loadSecret(f.subjectKeyFile)
		if err != nil {
			return nil, fmt.Errorf("-subject-key-file: %w", err)
		}
		if sec.audit, sec.stopPruner, err = openAudit(f.auditDir, key, sk, f.auditConfig, log); err != nil {
			return nil, err
		}
	}
	if f.auditConfig != "" && f.auditDir == "" {
		return nil, errors.New("-audit-config needs -audit-dir")
	}
	if f.adminAddr != "" {
		if sec.registry == nil && sec.audit == nil {
			return nil, errors.New("-admin-addr needs -access-dir or -audit-dir")
		}
		cfg := gateway.AdminConfig{Access: sec.registry, Audit: sec.audit, Log: log}
		if f.adminTokenFile != "" {
			tok, err := readPrivateFile(f.adminTokenFile)
			if err != nil {
				return nil, fmt.Errorf("-admin-token-file: %w", err)
			}
			if cfg.Token = bytes.TrimSpace(tok); len(cfg.Token) < 16 {
				return nil, errors.New("-admin-token-file: the token must be at least 16 characters")
			}
		}
		if f.adminClientCA != "" {
			if f.tlsCert == "" {
				return nil, errors.New("-admin-client-ca needs -tls-cert (the admin API then serves TLS)")
			}
			if cfg.ClientCAs, err = loadCertPool(f.adminClientCA); err != nil {
				return nil, fmt.Errorf("-admin-client-ca: %w", err)
			}
			sec.adminTLS = sec.tls.Clone()
		}
		if cfg.Token == nil && cfg.ClientCAs == nil {
			return nil, errors.New("-admin-addr needs -admin-token-file or -admin-client-ca")
		}
		sec.admin = gateway.NewAdmin(cfg)
	} else if f.adminTokenFile != "" || f.adminClientCA != "" {
		return nil, errors.New("-admin-token-file and -admin-client-ca need -admin-addr")
	}
	if f.testAddr != "" && sec.registry == nil {
		return nil, errors.New("-test-addr needs -access-dir")
	}
	return sec, nil
}

func loadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// servicesOf lists the services the plans serve, as grants name them.
func servicesOf(plans map[string]*flow.Plan) []access.Service {
	out := make([]access.Service, 0, len(plans))
	for _, p := range plans {
		out = append(out, access.Service{Name: p.Name, Major: p.Major})
	}
	return out
}
