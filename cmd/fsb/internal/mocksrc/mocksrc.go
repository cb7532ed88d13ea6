// Package mocksrc runs the three mock authentic sources that `fsb demo`
// starts in-process: an enterprise register (KBO/BCE-like), a person register
// (national-register-like) and a VAT/employer register. Each is a real
// net/http server on loopback that behaves like a Belgif-compliant source:
// JSON bodies, RFC 9457 problem responses with Belgif problem types,
// BelGov-Trace-Id handling and GET /health.
//
// The package owns only the mock sources and the loading of their synthetic
// data (testdata/demo). It must not know about flows, the gateway or the
// connectors that call it: the demo reaches it over HTTP like any source.
package mocksrc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Names of the three sources, as passed to [Sources.URL].
const (
	EnterpriseRegister = "enterpriseRegister"
	PersonRegister     = "personRegister"
	VATRegister        = "vatRegister"
)

// Numbers from testdata/demo that the demo prints in its example calls and
// that make the VAT register misbehave on purpose.
const (
	// ExampleEnterprise is active, has three directors who all exist in the
	// person register, and is VAT registered as an employer
	// (Zonnebloem Bakkerijen NV).
	ExampleEnterprise = "0912345673"
	// ExampleSSIN is one of ExampleEnterprise's directors (Marc Vandaele).
	ExampleSSIN = "68031401742"
	// SlowVATEnterprise (Boulangerie du Parc SRL) has a VAT record, but the
	// VAT register answers for it only after SlowVATDelay: longer than a demo
	// flow's per-step timeout, so an optional VAT step degrades gracefully.
	SlowVATEnterprise = "0967890150"
	// UnavailableVATEnterprise (Bureau Hendrickx Architecten BV) always gets
	// 503 urn:problem-type:belgif:serviceUnavailable from the VAT register.
	UnavailableVATEnterprise = "0978901234"
	// SlowVATDelay is how long the VAT register waits before answering for
	// SlowVATEnterprise.
	SlowVATDelay = 3 * time.Second
)

// names is the fixed order in which the sources start and are listed.
var names = []string{EnterpriseRegister, PersonRegister, VATRegister}

// shutdownGrace bounds how long Close waits for requests in flight.
const shutdownGrace = 5 * time.Second

// Sources are the running mock sources. Close them when done.
type Sources struct {
	byName map[string]*server
	// cancel ends the base context of every request, so that a request parked
	// in the slow VAT answer lets go at Close instead of holding shutdown.
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
}

type server struct {
	name   string
	url    string
	http   *http.Server
	ln     net.Listener
	served chan struct{} // closed when Serve has returned
}

// options are the knobs tests turn; Start uses the defaults.
type options struct {
	slowDelay time.Duration
}

// Start starts the three mock sources on 127.0.0.1 with ephemeral ports,
// reading data from dataDir (enterprises.json, persons.json, vat.json).
// A nil log discards logs. Every request is logged at Debug level.
func Start(dataDir string, log *slog.Logger) (*Sources, error) {
	return start(dataDir, log, options{slowDelay: SlowVATDelay})
}

func start(dataDir string, log *slog.Logger, opts options) (*Sources, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	data, err := loadData(dataDir)
	if err != nil {
		return nil, fmt.Errorf("mock sources: %w", err)
	}
	handlers := map[string]http.Handler{
		EnterpriseRegister: data.enterpriseHandler(),
		PersonRegister:     data.personHandler(),
		VATRegister:        data.vatHandler(opts.slowDelay),
	}

	baseCtx, cancel := context.WithCancel(context.Background())
	s := &Sources{byName: make(map[string]*server, len(names)), cancel: cancel}
	var listeners []net.Listener
	for _, name := range names {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			cancel()
			for _, l := range listeners {
				l.Close()
			}
			return nil, fmt.Errorf("mock sources: listen for %s: %w", name, err)
		}
		listeners = append(listeners, ln)
		srcLog := log.With(slog.String("source", name))
		s.byName[name] = &server{
			name: name,
			url:  "http://" + ln.Addr().String(),
			ln:   ln,
			http: &http.Server{
				Handler:           withTracing(name, srcLog, handlers[name]),
				ReadHeaderTimeout: 5 * time.Second,
				ReadTimeout:       10 * time.Second,
				// The slow VAT answer must fit inside the write deadline.
				WriteTimeout:   opts.slowDelay + 10*time.Second,
				IdleTimeout:    60 * time.Second,
				MaxHeaderBytes: 32 << 10,
				BaseContext:    func(net.Listener) context.Context { return baseCtx },
				ErrorLog:       slog.NewLogLogger(srcLog.Handler(), slog.LevelWarn),
			},
			served: make(chan struct{}),
		}
	}
	for _, name := range names {
		srv := s.byName[name]
		go func() {
			defer close(srv.served)
			if err := srv.http.Serve(srv.ln); !errors.Is(err, http.ErrServerClosed) {
				log.Error("mock source stopped", slog.String("source", srv.name), slog.Any("error", err))
			}
		}()
		log.Debug("mock source listening", slog.String("source", name), slog.String("url", srv.url))
	}
	return s, nil
}

// URL returns the base URL ("http://127.0.0.1:PORT") of the named source, or
// "" for a name that is not one of [Sources.Names].
func (s *Sources) URL(name string) string {
	if srv, ok := s.byName[name]; ok {
		return srv.url
	}
	return ""
}

// Names lists the sources: enterpriseRegister, personRegister, vatRegister.
func (s *Sources) Names() []string { return slices.Clone(names) }

// Close shuts the three sources down gracefully: it stops accepting, lets
// requests in flight finish (a parked slow VAT request is answered 503 at
// once) and waits up to a few seconds before closing connections by force.
// Calling Close again returns the first result.
func (s *Sources) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
		defer cancel()
		errs := make([]error, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			srv := s.byName[name]
			wg.Go(func() {
				// A connection a client opened but never used keeps Shutdown
				// waiting (net/http waits up to 5 s for new connections):
				// after the grace period, closing them is the answer, not an error.
				if err := srv.http.Shutdown(ctx); err != nil {
					if cerr := srv.http.Close(); cerr != nil {
						errs[i] = fmt.Errorf("mock source %s: shutdown: %w", name, errors.Join(err, cerr))
					}
				}
				<-srv.served
			})
		}
		wg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
