package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
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
	"runtime"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/breaker"
	"github.com/openfsb/fsb/engine/catalog"
	"github.com/openfsb/fsb/engine/config"
	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/metrics"
	"github.com/openfsb/fsb/engine/modules"
	"github.com/openfsb/fsb/engine/problem"
	"github.com/openfsb/fsb/engine/reload"
	"github.com/openfsb/fsb/engine/sources"
	"github.com/openfsb/fsb/engine/telemetry"
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
	configFile := fs.String("config", "", "the configuration file (engine/config/README.md); flags given explicitly win over it, DIR over its flows")
	check := fs.Bool("check", false, "validate the configuration, load the flows as serving would (plugins, sources, secrets) and exit: 0 ok, 1 errors; listens on nothing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: fsb serve [flags] DIR
       fsb serve --config FILE [--check] [flags] [DIR]

Serves the flows under DIR, calling the sources they declare. With --config,
the file configures everything (cmd/fsb/OPERATING.md); FSB_ environment
variables override it, flags given explicitly override both.`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 1 || (fs.NArg() == 0 && *configFile == "") {
		fs.Usage()
		return 2
	}
	cfg, err := serveConfig(*configFile, fs.Arg(0), &f, flagsSet(fs))
	if err != nil {
		printErrors(stderr, err, errorsWhere(err, *configFile, fs.Arg(0)))
		return 1
	}
	log, err := configLogger(stderr, cfg.Log)
	if err != nil {
		fmt.Fprintln(stderr, "fsb serve:", err)
		return 2
	}
	if *check {
		return checkConfig(cfg, log, stdout, stderr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := startServer(cfg, serveOptions{log: log})
	if err != nil {
		printErrors(stderr, err, errorsWhere(err, cfg.File, cfg.Flows))
		return 1
	}
	fmt.Fprintf(stdout, "serving %s on %s://%s\n", plural(srv.flows, "flow"), srv.scheme, srv.addr)
	if srv.testAddr != "" {
		fmt.Fprintf(stdout, "test environment on %s://%s\n", srv.scheme, srv.testAddr)
	}
	if srv.adminAddr != "" {
		fmt.Fprintf(stdout, "admin API on %s\n", srv.adminAddr)
	}
	return srv.wait(ctx, log)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// checkConfig is --check: the configuration is valid (serveConfig), now
// the listeners' hosts, the files it names — read by readKeys, as serving
// reads them — and the flow directory, loaded as serving would.
func checkConfig(cfg *config.Config, log *slog.Logger, stdout, stderr io.Writer) int {
	err := cfg.Check(context.Background(), config.CheckOptions{Sources: sources.Options{Connector: connectorConfig(log)},
		ReadFiles: func(c *config.Config) []*config.KeyError {
			_, errs := readKeys(c)
			return errs
		}})
	if err != nil {
		printErrors(stderr, err, errorsWhere(err, cfg.File, cfg.Flows))
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}

// configLogger is the process log as l says.
func configLogger(w io.Writer, l config.Log) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(l.Level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	return (&serveFlags{logFormat: l.Format}).newLogger(w, level)
}

// noAccessLog drops the gateway's access-log lines (log.access: false).
type noAccessLog struct{ slog.Handler }

func (h noAccessLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "request" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}
func (h noAccessLog) WithAttrs(a []slog.Attr) slog.Handler {
	return noAccessLog{h.Handler.WithAttrs(a)}
}
func (h noAccessLog) WithGroup(n string) slog.Handler { return noAccessLog{h.Handler.WithGroup(n)} }

// server is a running gateway: the consumer listener (and the test
// listener) serving the flow set of a reload.Reloader through a load
// limiter, and the admin API.
type server struct {
	addr      string
	testAddr  string // "" without a test listener
	adminAddr string // "" without the admin API
	scheme    string // http or https
	flows     int    // flows served at start

	r        *reload.Reloader
	limiter  *breaker.Limiter
	apps     []*fiber.App // the admin API
	servers  []*fasthttp.Server
	lns      []net.Listener
	errc     chan error
	log      *slog.Logger
	shutdown func() int // graceful stop, once; later calls return the same code
}

// serveOptions are what a server needs beside its configuration.
type serveOptions struct {
	// sources are the options of every snapshot's sources (the demo's mock
	// addresses and secrets); Connector defaults to fsb connector.
	sources sources.Options
	// log is the process log; nil: as cfg.Log says, on stderr.
	log *slog.Logger
	// shedLogEvery is how often shed calls are summed up in the log
	// (default shedLogEvery).
	shedLogEvery time.Duration
}

// shedLogEvery: a listener that shed calls logs one warning per interval
// at most, with the count (logShed).
const shedLogEvery = 10 * time.Second

func orDefaultDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// logShed warns, at most once every interval until ctx ends, how many
// calls l shed in the last interval: shed calls write no access line (they
// are answered before any flow is routed, at the least cost — OPERATING.md),
// so this line and fsb_shed_total are what show a saturated node. Polling
// the limiter's counter costs the shed path nothing.
func logShed(ctx context.Context, log *slog.Logger, listener string, l *breaker.Limiter, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	last := l.Shed()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := l.Shed()
		if d := n - last; d > 0 {
			log.Warn(fmt.Sprintf("shed %d calls in the last %s: the listener is saturated", d, every), "listener", listener,
				"shed", d, "interval", every.String(), "total", n)
		}
		last = n
	}
}

// logCircuit logs a source's circuit changing state: open at warn (calls
// to the source are answered 503 at once for breaker.openFor), half-open
// (a trial call) and closed (the source answers again) at info.
func logCircuit(log *slog.Logger, source, from, to string, s breaker.Settings) {
	switch to {
	case breaker.Open:
		log.Warn("circuit open: calls to the source are answered 503 without reaching it", "source", source, "from", from,
			"openFor", s.OpenFor.String())
	case breaker.HalfOpen:
		log.Info("circuit half-open: one trial call goes to the source", "source", source, "from", from)
	default:
		log.Info("circuit closed: the source is called again", "source", source, "from", from)
	}
}

// testListener marks a request of the test listener for the snapshot's
// handler, which holds a production and a test gateway.
const testListener = "fsb.testListener"

// startServer opens what cfg (valid: serveConfig, Validate) names —
// tracing, the WASM host, access, the audit trail, the admin API and
// metrics — loads the flow directory through engine/reload and listens. On
// error nothing stays open.
func startServer(cfg *config.Config, o serveOptions) (_ *server, err error) {
	log := o.log
	if log == nil {
		if log, err = configLogger(os.Stderr, cfg.Log); err != nil {
			return nil, err
		}
	}
	setGC(cfg.Limits.GOGC)
	setProcs(cfg.Audit.Enabled)
	ctx, cancel := context.WithCancel(context.Background())
	closers := []func(){cancel} // run last to first
	closeAll := func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	s := &server{scheme: "http", errc: make(chan error, 4), log: log}
	defer func() {
		if err != nil {
			for _, srv := range s.servers {
				_ = srv.Shutdown()
			}
			for _, app := range s.apps {
				_ = app.Shutdown()
			}
			for _, ln := range s.lns {
				_ = ln.Close()
			}
			if s.r != nil {
				_ = s.r.Close(context.Background())
			}
			closeAll()
		}
	}()

	tc := cfg.Tracing
	tr, err := telemetry.New(ctx, telemetry.Config{Enabled: tc.Enabled, Endpoint: tc.Endpoint, Insecure: tc.Insecure,
		Headers: tc.Headers, SampleRatio: tc.SampleRatio, ServiceName: tc.ServiceName, Propagate: tc.Propagate})
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	closers = append(closers, func() {
		c, stop := context.WithTimeout(context.Background(), 5*time.Second)
		defer stop()
		_ = tr.Shutdown(c) // flushes the spans still batched
	})
	host, err := wasm.NewHost(ctx, wasm.HostConfig{Log: log, CacheDir: cfg.WASM.CacheDir})
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { _ = host.Close(context.Background()) })
	var m *metrics.Metrics // metrics only where they can be read: the admin listener
	if cfg.Listeners.Admin.Addr != "" && cfg.Metrics.Enabled {
		m = metrics.New(metrics.Options{})
	}
	sec, err := openSecurity(cfg, keyNamer(cfg), log, m)
	if err != nil {
		return nil, err
	}
	closers = append(closers, sec.close) // the audit trail: flushed, a last checkpoint signed
	if sec.tls != nil {
		s.scheme = "https"
	}

	var observer flow.Observer = gateway.CallLogger{Log: log}
	if m != nil {
		observer = metrics.Observers(observer, m)
		sec.admin.SetMetrics(m.Handler()) // gateway.AdminPath + /metrics
		if p := cfg.Metrics.Path; p != gateway.AdminPath+"/metrics" {
			sec.admin.App().Get(p, m.Handler()) // behind the admin authentication too
		}
		if sec.audit != nil {
			m.SetAuditQueue(sec.audit.QueueDepth)
		}
	}
	gwLog := log
	if !cfg.Log.Access {
		gwLog = slog.New(noAccessLog{log.Handler()})
	}
	gatewayConfig := func(snap *reload.Snapshot) gateway.Config {
		c := gateway.Config{
			Plans:          snap.Plans,
			Runtime:        snap.Runtime,
			Log:            gwLog,
			TrustedProxies: cfg.TrustedProxies,
			Access:         sec.registry,
			Audit:          sec.audit,
			Catalog:        catalog.New(snap.Set, snap.Plans), // with source titles and test examples
			Tracer:         tr,                                // nil: tracing off
		}
		if m != nil { // a nil *metrics.Metrics would be a non-nil RequestMetrics
			c.Metrics = m
		}
		return c
	}
	withTest := cfg.Listeners.Test.Addr != ""
	bs := cfg.Breaker
	settings := breaker.Settings{ConsecutiveFailures: bs.ConsecutiveFailures, FailureRatio: bs.FailureRatio,
		MinRequests: bs.MinRequests, Window: bs.Window.D(), OpenFor: bs.OpenFor.D()}
	hooks := breaker.Hooks{ // metrics (nil: none) and the log
		StateChange: func(source, from, to string) {
			m.CircuitState(source, from, to)
			logCircuit(log, source, from, to, settings)
		},
		Rejected: m.CircuitRejected,
	}
	sopt := o.sources
	if sopt.Connector == nil {
		sopt.Connector = connectorConfig(log) // file sources' transports: `fsb connector` (connector.go)
	}
	s.r, err = reload.New(ctx, reload.Options{
		Dir: cfg.Flows, Host: host, Sources: sopt, Modules: modules.Options{LookupEnv: sopt.LookupEnv},
		WrapConnector: func(name string, c connector.Connector) connector.Connector {
			if bs.Enabled {
				c = breaker.Wrap(name, c, settings, hooks)
			}
			return tr.Connector(name, c)
		},
		WrapPlugin: func(name string, p flow.Plugin) flow.Plugin { return tr.Plugin(name, m.Plugin(name, p)) },
		Observer:   observer,
		Log:        log,
		Debounce:   cfg.Reload.Debounce.D(),
		OnReload: func(gen uint64, _ time.Duration, err error) {
			m.Reload(cfg.Flows, gen, err)
			if err != nil || s.r == nil { // s.r is nil during the first load, set below
				return
			}
			cur := s.r.Current()
			if sec.admin != nil {
				sec.admin.SetServices(servicesOf(cur.Plans))
			}
			if bs.Enabled {
				for name := range cur.Runtime.Conns { // the new snapshot's breakers start closed
					m.CircuitState(name, "", breaker.Closed)
				}
			}
		},
		Handler: func(snap *reload.Snapshot) (fasthttp.RequestHandler, error) {
			gc := gatewayConfig(snap)
			prod := gateway.New(gc).App().Handler()
			if !withTest {
				return prod, nil
			}
			tc := gc
			tc.Environment = access.Test
			tc.Metrics = nil // fsb_requests_total counts production calls only (the source calls are counted)
			test := gateway.New(tc).App().Handler()
			return func(c *fasthttp.RequestCtx) {
				if c.UserValue(testListener) != nil {
					test(c)
				} else {
					prod(c)
				}
			}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	cur := s.r.Current()
	s.flows = len(cur.Plans)
	for _, w := range cur.Set.Warnings() { // what a WSDL uses that the SOAP codec leaves out
		log.Warn(w.Error())
	}
	for _, p := range cur.Plans {
		if p.MaxBodySize > int64(cfg.Limits.MaxRequestBody) {
			log.Warn("a flow's maxBodySize is above limits.maxRequestBody, which applies first", "flow", p.Name,
				"maxBodySize", p.MaxBodySize, "limits.maxRequestBody", int64(cfg.Limits.MaxRequestBody))
		}
	}
	if m != nil {
		m.Reload(cfg.Flows, cur.Generation, nil)
		m.SetPlugins(func() map[string]flow.Plugin { // the snapshot being served, not the first one
			if cur := s.r.Current(); cur != nil {
				return cur.Runtime.Plugins
			}
			return nil
		})
	}
	if sec.admin != nil {
		sec.admin.SetServices(servicesOf(cur.Plans)) // legal bases are submitted for these services only; OnReload updates them
	}

	lim := cfg.Limits
	newLimiter := func(listener string) *breaker.Limiter {
		l := breaker.NewLimiter(lim.MaxConcurrent, breaker.LimiterOptions{MaxWait: lim.MaxWait.D(), MaxQueue: lim.MaxQueue,
			OnShed: func() { m.Shed(listener) }})
		go logShed(ctx, log, listener, l, orDefaultDuration(o.shedLogEvery, shedLogEvery))
		return l
	}
	s.limiter = newLimiter("consumer")
	if m != nil {
		m.SetInFlight(func() (int, int) { return s.limiter.InFlight(), s.limiter.Capacity() })
	}
	httpServer := func(h fasthttp.RequestHandler) *fasthttp.Server {
		return &fasthttp.Server{
			Handler:               h,
			NoDefaultServerHeader: true,
			MaxRequestBodySize:    int(lim.MaxRequestBody),
			ReadTimeout:           lim.ReadTimeout.D(),
			WriteTimeout:          lim.WriteTimeout.D(),
			IdleTimeout:           lim.IdleTimeout.D(),
			CloseOnShutdown:       true, // keep-alive connections close after their call
			ErrorHandler:          serverError,
			Logger:                fasthttpLogger{log},
		}
	}
	keyName := keyNamer(cfg)
	listen := func(key, addr string, tlsConf *tls.Config, serve func(net.Listener) error) (string, error) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return "", fmt.Errorf("%s: listen on %s: %w", keyName(key), addr, err)
		}
		s.lns = append(s.lns, ln)
		if tlsConf != nil {
			ln = tls.NewListener(ln, tlsConf)
		}
		go func() { s.errc <- serve(ln) }()
		return ln.Addr().String(), nil
	}
	consumer := httpServer(s.limiter.Wrap(s.r.Handler())) // each call on the snapshot current when it arrives
	s.servers = append(s.servers, consumer)
	if s.addr, err = listen("listeners.consumer.addr", cfg.Listeners.Consumer.Addr, sec.tls, consumer.Serve); err != nil {
		return nil, err
	}
	if withTest {
		next := newLimiter("test").Wrap(s.r.Handler())
		test := httpServer(func(c *fasthttp.RequestCtx) {
			c.SetUserValue(testListener, true)
			next(c)
		})
		s.servers = append(s.servers, test)
		if s.testAddr, err = listen("listeners.test.addr", cfg.Listeners.Test.Addr, sec.tls, test.Serve); err != nil {
			return nil, err
		}
	}
	if sec.admin != nil {
		app := sec.admin.App()
		s.apps = append(s.apps, app)
		if s.adminAddr, err = listen("listeners.admin.addr", cfg.Listeners.Admin.Addr, sec.adminTLS, app.Listener); err != nil {
			return nil, err
		}
	}
	if cfg.Reload.Watch { // watched before serve says it is ready
		if _, err := s.r.Watch(ctx); err != nil {
			log.Warn("reload: not watching the flow directory (SIGHUP still reloads)", "dir", cfg.Flows, "err", err)
		}
	}
	if cfg.Reload.Signal {
		go s.r.OnSignal(ctx)
	}
	// The start-up lines cmdServe prints, for a log collector too.
	log.Info("serving", "flows", s.flows, "url", s.scheme+"://"+s.addr, "dir", cfg.Flows)
	if s.testAddr != "" {
		log.Info("test environment", "url", s.scheme+"://"+s.testAddr)
	}
	if s.adminAddr != "" {
		log.Info("admin API", "addr", s.adminAddr)
	}
	timeout := lim.ShutdownTimeout.D()
	s.shutdown = sync.OnceValue(func() int { return s.stop(timeout, closeAll) })
	return s, nil
}

// stop is the graceful shutdown: stop accepting, let the calls in flight
// finish within timeout, close the flow set (plugins, connectors, the
// connector process), then the audit trail (flushed, a last checkpoint
// signed), the registry, the WASM host and tracing.
func (s *server) stop(timeout time.Duration, closeAll func()) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	code := 0
	var mu sync.Mutex
	fail := func(what string, err error) {
		if err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("shutdown", "what", what, "err", err)
			mu.Lock()
			code = 1
			mu.Unlock()
		}
	}
	var wg sync.WaitGroup
	for _, srv := range s.servers {
		wg.Go(func() { fail("listener", srv.ShutdownWithContext(ctx)) })
	}
	for _, app := range s.apps {
		wg.Go(func() { fail("admin listener", app.ShutdownWithContext(ctx)) })
	}
	wg.Wait()
	// Shutdown closes only the listeners Serve has registered: close ours
	// too, in case a Serve goroutine had not got that far.
	for _, ln := range s.lns {
		_ = ln.Close()
	}
	fail("flow set", s.r.Close(ctx))
	closeAll()
	return code
}

// wait serves until ctx ends (Ctrl-C, SIGTERM), then shuts down gracefully.
func (s *server) wait(ctx context.Context, log *slog.Logger) int {
	select {
	case err := <-s.errc:
		if err != nil && !errors.Is(err, net.ErrClosed) {
			log.Error("server stopped", "err", err)
			s.shutdown()
			return 1
		}
		return s.shutdown()
	case <-ctx.Done():
	}
	log.Info("shutting down")
	return s.shutdown()
}

// setGC sets the garbage collector for a gateway unless GOGC says
// otherwise (limits.gogc; 0 keeps Go's default): the live heap is small
// (plans, pools) while every request allocates, so the default GOGC=100
// collects several hundred times a second under load. 400 trades a few MiB
// of heap for ~15% more requests/s.
func setGC(percent int) {
	if os.Getenv("GOGC") == "" && percent != 0 {
		debug.SetGCPercent(percent)
	}
}

// setProcs gives the Go scheduler one P more than its default when the
// audit trail is on, unless GOMAXPROCS is set. The trail's writer blocks
// its thread in a synchronous write a few hundred times a second, holding
// its P — and the calls it has just acknowledged, queued on that P — until
// the runtime's monitor hands the P on; with one P per core a core sits
// idle meanwhile. One P more keeps every core busy: in fsb bench's audited
// three-source candidate on 2 cores, ~15% more requests/s and the idle
// share down from ~11% to ~7% (engine/gateway/AUDIT.md); without the trail
// it changes nothing measurable. Setting GOMAXPROCS also ends the
// runtime's own updates of it (a container's CPU limit set later), so it
// is set only where it changes something.
func setProcs(audit bool) {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	n := defaultProcs
	if audit && defaultProcs == runtime.NumCPU() {
		// Not under a container's CPU limit (the runtime then chooses
		// fewer than the machine's CPUs): one P more than the limit would
		// spend the quota early and be throttled for the rest of each
		// period.
		n++
	}
	if runtime.GOMAXPROCS(0) != n { // a process that starts servers again (tests) does not add up
		runtime.GOMAXPROCS(n)
	}
}

// defaultProcs is GOMAXPROCS as the runtime chose it.
var defaultProcs = runtime.GOMAXPROCS(0)

// tuneGC is setGC with the default (fsb bench's candidates).
func tuneGC() { setGC(config.Default().Limits.GOGC) }

// serverError answers what fasthttp refuses before a handler runs (a body
// over limits.maxRequestBody, a header too large, a read timeout) with a
// problem document, as the gateway answers everything else.
func serverError(c *fasthttp.RequestCtx, err error) {
	var p *problem.Problem
	var small *fasthttp.ErrSmallBuffer
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		p = problem.TooLarge("the request body exceeds the limit")
	case errors.As(err, &small):
		p = &problem.Problem{Type: "about:blank", Title: "Request Header Fields Too Large", Status: 431}
	case errors.As(err, &ne) && ne.Timeout():
		p = &problem.Problem{Type: "about:blank", Title: "Request Timeout", Status: 408}
	default:
		p = problem.BadRequest("the request could not be read")
	}
	c.Response.Reset()
	c.SetStatusCode(p.Status)
	c.SetContentType(problem.ContentType)
	c.SetBody(p.JSON())
}

// fasthttpLogger sends fasthttp's own messages to the log at debug level.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "http")
}

// securityFlags switch on TLS, access enforcement, the audit trail, the
// test listener and the admin API. Every one is off unless set: `fsb
// serve DIR` alone serves plain HTTP without access control or audit
// trail.
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
	fs.StringVar(&f.auditDir, "audit-dir", "", "record every consumer call in the audit trail stored in this directory")
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

// openSecurity opens what cfg (valid: Validate) asks for — TLS, the
// consumer registry, the audit trail, the admin API — naming keys in
// errors as n does (a flag, or file:line:col and the key). It first reads
// every file cfg names with CheckFiles and readKeys, as --check does. On
// error nothing stays open.
func openSecurity(cfg *config.Config, n func(string) string, log *slog.Logger, m *metrics.Metrics) (sec *security, err error) {
	var files *keyFiles
	if err := cfg.CheckFiles(func(c *config.Config) []*config.KeyError {
		var errs []*config.KeyError
		files, errs = readKeys(c)
		return errs
	}); err != nil {
		return nil, err
	}
	sec = &security{}
	opened := sec // a failing return sets sec to nil first
	defer func() {
		if err != nil {
			opened.close()
			sec = nil
		}
	}()
	if files.cert != nil {
		// RequestClientCert, not RequireAndVerify: access verifies the chain
		// itself, so a wrong certificate gets a problem document, not an alert.
		sec.tls = &tls.Config{Certificates: []tls.Certificate{*files.cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}
	}
	if cfg.Access.Enabled {
		if files.clientCAs == nil {
			log.Warn("access enforcement without a client CA (" + n("listeners.consumer.tls.clientCA") + "): no client certificate can be registered or accepted")
		}
		if sec.tls == nil {
			log.Warn("access enforcement over plain HTTP (no TLS certificate): consumers cannot present certificates, and tokens travel in clear")
		}
		opts := access.Options{ClientCAs: files.clientCAs, Logger: log}
		if files.token != nil {
			opts.Tokens = access.TokenConfig{Issuer: cfg.Access.TokenIssuer, Audience: cfg.Access.TokenAudience, Key: files.token}
		}
		if sec.registry, err = access.Open(cfg.Access.Dir, opts); err != nil {
			return nil, fmt.Errorf("%s: %w", n("access.dir"), err)
		}
	}
	if cfg.Audit.Enabled {
		var onCommit func(int, time.Duration, error) // fsb_audit_commit_duration_seconds, records, failures
		if m != nil {
			onCommit = m.AuditCommit
		}
		if sec.audit, sec.stopPruner, err = openAudit(cfg.Audit.Dir, files.audit, files.subject, files.auditConfig, log, onCommit); err != nil {
			return nil, fmt.Errorf("%s: %w", n("audit.dir"), err)
		}
	}
	if cfg.Listeners.Admin.Addr != "" {
		ac := gateway.AdminConfig{Access: sec.registry, Audit: sec.audit, Log: log, Token: files.adminToken, ClientCAs: files.adminCAs}
		if files.adminCAs != nil {
			sec.adminTLS = sec.tls.Clone()
		}
		sec.admin = gateway.NewAdmin(ac)
	}
	return sec, nil
}

// keyFiles is what the files a configuration names hold, read as serving
// uses them; nil or empty where the configuration names none.
type keyFiles struct {
	cert        *tls.Certificate // listeners.consumer.tls.cert and key
	clientCAs   *x509.CertPool   // listeners.consumer.tls.clientCA
	adminCAs    *x509.CertPool   // listeners.admin.clientCA, with the admin listener
	token       ed25519.PrivateKey
	audit       ed25519.PrivateKey // with the audit trail
	subject     audit.Key
	auditConfig *auditConfig // never nil with the audit trail
	adminToken  []byte       // with the admin listener
}

// readKeys reads every file cfg names that serving uses, with serving's
// rules (an Ed25519 key in PEM, a subject key of 32 bytes, an admin token
// of 16 characters, a valid audit configuration), and returns every error
// at its key. openSecurity serves with what it read; --check reports its
// errors (config.CheckOptions.ReadFiles): one function, so that --check
// refuses what serve would.
func readKeys(cfg *config.Config) (*keyFiles, []*config.KeyError) {
	f := &keyFiles{}
	var errs []*config.KeyError
	fail := func(key string, err error) { errs = append(errs, &config.KeyError{Key: key, Err: err}) }
	t, keys, err := cfg.Listeners.Consumer.TLS, cfg.Keys, error(nil)
	if t.ClientCA != "" {
		if f.clientCAs, err = loadCertPool(t.ClientCA); err != nil {
			fail("listeners.consumer.tls.clientCA", err)
		}
	}
	if t.Cert != "" {
		if cert, err := tls.LoadX509KeyPair(t.Cert, t.Key); err != nil {
			fail("listeners.consumer.tls.cert", err)
		} else {
			f.cert = &cert
		}
	}
	if cfg.Access.Enabled && keys.Token != "" {
		if f.token, err = loadEd25519Key(keys.Token); err != nil {
			fail("keys.token", err)
		}
	}
	if cfg.Audit.Enabled {
		if f.audit, err = loadEd25519Key(keys.Audit); err != nil {
			fail("keys.audit", err)
		}
		if f.subject, err = loadSecret(keys.Subject); err != nil {
			fail("keys.subject", err)
		}
		f.auditConfig = &auditConfig{}
		if cfg.Audit.Config != "" {
			if f.auditConfig, err = loadAuditConfig(cfg.Audit.Config); err != nil {
				fail("audit.config", err)
			}
		}
	}
	if admin := cfg.Listeners.Admin; admin.Addr != "" {
		if keys.AdminToken != "" {
			tok, err := readPrivateFile(keys.AdminToken)
			switch tok = bytes.TrimSpace(tok); {
			case err != nil:
				fail("keys.adminToken", err)
			case len(tok) < 16:
				fail("keys.adminToken", fmt.Errorf("the token in %s must be at least 16 characters (it has %d): make one with `fsb audit secret -out FILE`", keys.AdminToken, len(tok)))
			default:
				f.adminToken = tok
			}
		}
		if admin.ClientCA != "" {
			if f.adminCAs, err = loadCertPool(admin.ClientCA); err != nil {
				fail("listeners.admin.clientCA", err)
			}
		}
	}
	return f, errs
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
