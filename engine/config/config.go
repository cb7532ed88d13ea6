// Package config is the one configuration file of `fsb serve`: its model,
// defaults, decoding with positions (every error is file:line:col and says
// what to do), environment variable overrides and validation, and Check,
// which `fsb serve --check` runs to validate the file and load the flows
// without serving. It owns the file's format (README.md documents every
// key); it opens nothing and must not know how the gateway is wired.
package config

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"time"

	"github.com/openfsb/fsb/engine/spec"
)

// Config is the configuration of one `fsb serve` process. The yaml tags are
// the file's keys; README.md documents each.
type Config struct {
	// File is the file the configuration was read from ("" for defaults).
	File string `yaml:"-" json:"-"`

	Flows          string    `yaml:"flows"`
	DataDir        string    `yaml:"dataDir"`
	Listeners      Listeners `yaml:"listeners"`
	TrustedProxies []string  `yaml:"trustedProxies"`
	Keys           Keys      `yaml:"keys"`
	Access         Access    `yaml:"access"`
	Audit          Audit     `yaml:"audit"`
	Limits         Limits    `yaml:"limits"`
	Log            Log       `yaml:"log"`
	Metrics        Metrics   `yaml:"metrics"`
	Tracing        Tracing   `yaml:"tracing"`
	Breaker        Breaker   `yaml:"breaker"`
	Reload         Reload    `yaml:"reload"`
	WASM           WASM      `yaml:"wasm"`

	// pos holds the position of every key read from the file, by its path
	// (listeners.consumer.addr), so that validation can point at it.
	pos map[string]spec.Pos
	src spec.Sources
}

// Listeners are the addresses the process serves on.
type Listeners struct {
	Consumer Consumer `yaml:"consumer"`
	Test     Test     `yaml:"test"`
	Admin    Admin    `yaml:"admin"`
}

// Consumer is the consumer API listener (serve's --addr, --tls-*, --client-ca).
type Consumer struct {
	Addr string `yaml:"addr"`
	TLS  TLS    `yaml:"tls"`
}

// TLS serves a listener over TLS.
type TLS struct {
	Cert     string `yaml:"cert"`
	Key      string `yaml:"key"`
	ClientCA string `yaml:"clientCA"`
}

// Test is the connection-test listener (--test-addr); empty: none.
type Test struct {
	Addr string `yaml:"addr"`
}

// Admin is the admin listener (--admin-addr, --admin-client-ca): the admin
// API, /metrics. Empty Addr: none.
type Admin struct {
	Addr     string `yaml:"addr"`
	ClientCA string `yaml:"clientCA"`
}

// Keys are paths to key material; never the keys themselves.
type Keys struct {
	Token      string `yaml:"token"`      // --token-key
	Audit      string `yaml:"audit"`      // --audit-key
	Subject    string `yaml:"subject"`    // --subject-key-file
	AdminToken string `yaml:"adminToken"` // --admin-token-file
}

// Access is access enforcement (--access-dir, --token-issuer, --token-audience).
type Access struct {
	Enabled       bool   `yaml:"enabled"`
	Dir           string `yaml:"dir"`
	TokenIssuer   string `yaml:"tokenIssuer"`
	TokenAudience string `yaml:"tokenAudience"`
}

// Audit is the audit trail (--audit-dir, --audit-config).
type Audit struct {
	Enabled bool   `yaml:"enabled"`
	Dir     string `yaml:"dir"`
	// Config is the audit configuration file: retention and stored bodies
	// per service, pruning, minimum free space (engine/gateway/AUDIT.md).
	Config string `yaml:"config"`
}

// Limits bound the process.
type Limits struct {
	MaxConcurrent   int      `yaml:"maxConcurrent"`
	MaxQueue        int      `yaml:"maxQueue"`
	MaxWait         Duration `yaml:"maxWait"`
	MaxRequestBody  ByteSize `yaml:"maxRequestBody"`
	ReadTimeout     Duration `yaml:"readTimeout"`
	WriteTimeout    Duration `yaml:"writeTimeout"`
	IdleTimeout     Duration `yaml:"idleTimeout"`
	ShutdownTimeout Duration `yaml:"shutdownTimeout"`
	GOGC            int      `yaml:"gogc"`
}

// Log is the process log (--log-level).
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	Access bool   `yaml:"access"`
}

// Metrics are served on the admin listener.
type Metrics struct {
	Enabled bool   `yaml:"enabled"`
	Path    string `yaml:"path"`
}

// Tracing is OpenTelemetry tracing (engine/telemetry).
type Tracing struct {
	Enabled     bool              `yaml:"enabled"`
	Endpoint    string            `yaml:"endpoint"`
	Insecure    bool              `yaml:"insecure"`
	Headers     map[string]string `yaml:"headers"`
	SampleRatio float64           `yaml:"sampleRatio"`
	ServiceName string            `yaml:"serviceName"`
	Propagate   []string          `yaml:"propagate"`
}

// Breaker is the circuit breaker every source gets (engine/breaker).
type Breaker struct {
	Enabled             bool     `yaml:"enabled"`
	ConsecutiveFailures int      `yaml:"consecutiveFailures"`
	FailureRatio        float64  `yaml:"failureRatio"`
	MinRequests         int      `yaml:"minRequests"`
	Window              Duration `yaml:"window"`
	OpenFor             Duration `yaml:"openFor"`
}

// Reload is hot reload of the flow directory (engine/reload).
type Reload struct {
	Watch    bool     `yaml:"watch"`
	Signal   bool     `yaml:"signal"`
	Debounce Duration `yaml:"debounce"`
}

// WASM is the plugin sandbox.
type WASM struct {
	CacheDir string `yaml:"cacheDir"`
}

// Default returns the configuration of a file that sets nothing: the
// consumer listener on loopback, flows from ./flows, no TLS, no access
// control, no audit trail, no admin listener, tracing off; metrics,
// breakers, hot reload on (they act only with an admin listener, sources
// and a flow directory).
func Default() *Config {
	return &Config{
		Flows:     "flows",
		Listeners: Listeners{Consumer: Consumer{Addr: "127.0.0.1:8080"}},
		Access:    Access{TokenIssuer: "openfsb", TokenAudience: "openfsb-consumer"},
		Limits: Limits{
			MaxConcurrent:   1024,
			MaxWait:         Duration(50 * time.Millisecond),
			MaxRequestBody:  ByteSize(8 << 20),
			ReadTimeout:     Duration(30 * time.Second),
			WriteTimeout:    Duration(30 * time.Second),
			IdleTimeout:     Duration(120 * time.Second),
			ShutdownTimeout: Duration(10 * time.Second),
			GOGC:            400,
		},
		Log:     Log{Level: "info", Format: "json", Access: true},
		Metrics: Metrics{Enabled: true, Path: "/metrics"},
		Tracing: Tracing{SampleRatio: 1, ServiceName: "openfsb"},
		Breaker: Breaker{Enabled: true, ConsecutiveFailures: 5, FailureRatio: 0.5, MinRequests: 20, Window: Duration(time.Minute), OpenFor: Duration(30 * time.Second)},
		Reload:  Reload{Watch: true, Signal: true, Debounce: Duration(250 * time.Millisecond)},
	}
}

// Load reads a configuration file over the defaults, applies the
// environment overrides (lookupEnv; nil: os.LookupEnv), fills the derived
// defaults, resolves relative paths against the file's directory and
// validates. Errors are one spec.ErrorList, each file:line:col (or the
// environment variable) with what to do.
func Load(file string, lookupEnv func(string) (string, bool)) (*Config, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	c, errs := decode(file, b)
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	errs = append(errs, c.applyEnv(lookupEnv)...)
	c.derive()
	c.resolve(filepath.Dir(file))
	errs = append(errs, c.validate()...)
	errs.Sort()
	return c, errs.Err()
}

// Decode reads a configuration from bytes over the defaults, without the
// environment, derived defaults or validation (for tests and tools).
func Decode(name string, b []byte) (*Config, error) {
	c, errs := decode(name, b)
	return c, errs.Err()
}

// Set sets one key (listeners.consumer.addr) from text, as an environment
// variable would, and records origin (e.g. "flag -addr") as where it was
// set, so that a later validation error names it. A command's flags given
// explicitly win over the file this way. Paths are taken as given.
func (c *Config) Set(key, value, origin string) error {
	i := slices.IndexFunc(AllKeys(), func(k Key) bool { return k.Path == key })
	if i < 0 {
		return fmt.Errorf("config: no key %q", key)
	}
	if err := setFromText(fieldByPath(reflect.ValueOf(c).Elem(), key), value); err != nil {
		return fmt.Errorf("%s: %w", origin, err)
	}
	if c.pos == nil {
		c.pos = map[string]spec.Pos{}
	}
	c.pos[key] = spec.Pos{File: origin}
	return nil
}

// Validate fills the derived defaults and validates again, after Set or
// after changing fields by hand (Load validates already). Errors are a
// spec.ErrorList, each at the key at fault.
func (c *Config) Validate() error {
	c.derive()
	errs := c.validate()
	errs.Sort()
	return errs.Err()
}

// derive fills defaults that depend on other keys.
func (c *Config) derive() {
	if c.DataDir != "" {
		if c.Access.Enabled && c.Access.Dir == "" {
			c.Access.Dir = filepath.Join(c.DataDir, "access")
		}
		if c.Audit.Enabled && c.Audit.Dir == "" {
			c.Audit.Dir = filepath.Join(c.DataDir, "audit")
		}
		if c.WASM.CacheDir == "" {
			c.WASM.CacheDir = filepath.Join(c.DataDir, "wasm-cache")
		}
	}
}

// resolve makes relative paths relative to dir (the file's directory).
func (c *Config) resolve(dir string) {
	for _, p := range []*string{&c.Flows, &c.DataDir, &c.Listeners.Consumer.TLS.Cert, &c.Listeners.Consumer.TLS.Key,
		&c.Listeners.Consumer.TLS.ClientCA, &c.Listeners.Admin.ClientCA, &c.Keys.Token, &c.Keys.Audit, &c.Keys.Subject,
		&c.Keys.AdminToken, &c.Access.Dir, &c.Audit.Dir, &c.Audit.Config, &c.WASM.CacheDir} {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
}

// Pos returns where a key (listeners.consumer.addr) was set in the file,
// or the file alone when it was not.
func (c *Config) Pos(key string) spec.Pos {
	if p, ok := c.pos[key]; ok {
		return p
	}
	return spec.Pos{File: c.File}
}

func (c *Config) errorf(key, format string, args ...any) *spec.Error {
	return c.src.Errorf(c.Pos(key), format, args...)
}
