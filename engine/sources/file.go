package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"slices"
	"strconv"
	"sync"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/file"
	"github.com/openfsb/fsb/engine/connector/file/ftp"
	"github.com/openfsb/fsb/engine/connector/file/sftp"
	"github.com/openfsb/fsb/engine/plugin"
	"github.com/openfsb/fsb/engine/spec"
)

// fileTransports is the one connector process shared by every file source
// of a set: started when the first file source opens, stopped when the
// last one is closed.
type fileTransports struct {
	config func() (plugin.Config, error)

	mu   sync.Mutex
	sup  *plugin.Supervisor
	err  error // the failed start, not retried per source
	refs int
}

// acquire starts the process on first use and counts a user of it.
func (t *fileTransports) acquire() (*plugin.Supervisor, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sup == nil && t.err == nil {
		t.sup, t.err = t.start()
	}
	if t.err != nil {
		return nil, t.err
	}
	t.refs++
	return t.sup, nil
}

func (t *fileTransports) start() (*plugin.Supervisor, error) {
	if t.config == nil {
		return nil, errors.New("file sources need the connector process, and none is configured (sources.Options.Connector)")
	}
	cfg, err := t.config()
	if err != nil {
		return nil, fmt.Errorf("the connector process: %w", err)
	}
	sup, err := plugin.Start(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("start the connector process: %w", err)
	}
	return sup, nil
}

// release stops the process when its last user is gone.
func (t *fileTransports) release() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refs--
	if t.refs > 0 || t.sup == nil {
		return nil
	}
	sup := t.sup
	t.sup = nil
	return sup.Close()
}

// fileSource is a file source's connector; closing it releases the
// shared connector process.
type fileSource struct {
	*file.Connector
	transports *fileTransports
	once       sync.Once
}

func (f *fileSource) Close() error {
	var err error
	f.once.Do(func() { err = f.transports.release() })
	return err
}

// openFile builds the connector of an ftp or sftp source: the driver
// configuration (secrets read here, sent to the process inside Open over
// its mutual-TLS channel), an endpoint in the shared connector process,
// and the codec plugins of its operations.
func openFile(set *spec.Set, src *spec.Source, opt Options) (connector.Connector, error) {
	driverCfg, err := driverConfig(src, opt)
	if err != nil {
		return nil, err
	}
	cfg := file.Config{
		Source:      src.Name,
		MaxFileSize: int64(src.MaxFileSize),
		Timeout:     src.Timeout.D(),
		Operations:  map[string]file.Operation{},
	}
	if c := src.Cache; c != nil {
		cfg.Cache = file.CacheConfig{TTL: c.TTL.D(), MaxBytes: int64(c.MaxBytes)}
	}
	for _, name := range slices.Sorted(maps.Keys(src.Operations)) {
		op, err := fileOperation(set, src, src.Operations[name], opt)
		if err != nil {
			return nil, fmt.Errorf("operation %q: %w", name, err)
		}
		cfg.Operations[name] = op
	}
	sup, err := opt.files.acquire()
	if err != nil {
		return nil, err
	}
	cfg.Store = sup.Endpoint(src.Protocol, driverCfg)
	c, err := file.New(cfg)
	if err != nil {
		_ = opt.files.release()
		return nil, err
	}
	return &fileSource{Connector: c, transports: opt.files}, nil
}

// fileOperation maps an operation; its codec is the loaded plugin, with
// the operation's config merged over the plugin's own (as transform steps
// merge theirs).
func fileOperation(set *spec.Set, src *spec.Source, op *spec.FileOperation, opt Options) (file.Operation, error) {
	out := file.Operation{
		Kind: file.Kind(op.Kind), Dir: op.Dir, Pattern: op.Pattern, File: op.File,
		Keys: op.Keys, MaxFileSize: int64(op.MaxFileSize),
	}
	cd := op.Codec
	if cd == nil {
		return out, nil
	}
	m := opt.Plugins[cd.Plugin]
	if m == nil {
		return out, fmt.Errorf("codec plugin %q is not loaded", cd.Plugin)
	}
	if x, ok := m.(interface{ Operations() []string }); ok && !slices.Contains(x.Operations(), "decode") {
		return out, fmt.Errorf("codec plugin %q has no decode operation: declare a codec (plugins/csv/csv.wasm, plugins/fixedwidth/fixedwidth.wasm)", cd.Plugin)
	}
	config := map[string]any{}
	if pl := set.Plugins[cd.Plugin]; pl != nil && pl.Config != nil {
		if pm, ok := pl.Config.V.(map[string]any); ok {
			maps.Copy(config, pm)
		}
	}
	if cd.Config != nil {
		if om, ok := cd.Config.V.(map[string]any); ok {
			maps.Copy(config, om)
		}
	}
	b, err := json.Marshal(config)
	if err != nil {
		return out, err
	}
	out.Codec, out.CodecConfig = file.ModuleCodec{Module: m}, b
	return out, nil
}

// driverConfig is the JSON the ftp or sftp driver opens an endpoint with.
func driverConfig(src *spec.Source, opt Options) ([]byte, error) {
	var over fileServer
	u, overridden := opt.BaseURLs[src.Name]
	if overridden {
		var err error
		if over, err = parseFileServer(u, src.Protocol); err != nil {
			return nil, err
		}
	}
	read := func(what string, s *spec.Secret) (string, error) {
		if s == nil {
			return "", nil
		}
		v, err := s.Read(opt.LookupEnv)
		if err != nil {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		return v, nil
	}
	switch src.Protocol {
	case "ftp":
		f := src.FTP
		c := ftp.Config{
			Host: f.Host, Port: f.Port, User: f.User, TLS: f.TLS, ServerName: f.ServerName,
			BaseDir: f.BaseDir, Timeout: f.Timeout.D(), MaxConns: f.MaxConns, DisableEPSV: f.DisableEPSV,
		}
		var err error
		if c.Password, err = read("password", f.Password); err != nil {
			return nil, err
		}
		if f.CAFile != "" {
			pem, err := os.ReadFile(f.CAFile)
			if err != nil {
				return nil, fmt.Errorf("caFile: %w", err)
			}
			c.CAPEM = string(pem)
		}
		if overridden {
			c.Host, c.Port = over.host, over.port
		}
		return json.Marshal(c)
	case "sftp":
		s := src.SFTP
		c := sftp.Config{Host: s.Host, Port: s.Port, User: s.User, HostKeys: s.HostKeys, BaseDir: s.BaseDir, Timeout: s.Timeout.D()}
		var err error
		if c.Password, err = read("password", s.Password); err != nil {
			return nil, err
		}
		if c.PrivateKey, err = read("privateKey", s.PrivateKey); err != nil {
			return nil, err
		}
		if c.Passphrase, err = read("passphrase", s.Passphrase); err != nil {
			return nil, err
		}
		if overridden {
			c.Host, c.Port = over.host, over.port
			if len(over.hostKeys) > 0 {
				c.HostKeys = over.hostKeys
			}
		}
		return json.Marshal(c)
	}
	return nil, fmt.Errorf("protocol %q is not a file protocol", src.Protocol)
}

// fileServer is where Options.BaseURLs moves a file source.
type fileServer struct {
	host     string
	port     int
	hostKeys []string
}

// parseFileServer reads ftp://host:port or sftp://host:port?hostKey=SHA256:….
func parseFileServer(raw, protocol string) (fileServer, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return fileServer{}, fmt.Errorf("address override: want %s://host:port", protocol)
	}
	raw = u.Redacted() // no password in errors
	if u.Scheme != protocol || u.Hostname() == "" || u.User != nil || (u.Path != "" && u.Path != "/") {
		return fileServer{}, fmt.Errorf("address override %q: want %s://host:port", raw, protocol)
	}
	fs := fileServer{host: u.Hostname(), hostKeys: u.Query()["hostKey"]}
	if p := u.Port(); p != "" {
		if fs.port, err = strconv.Atoi(p); err != nil {
			return fileServer{}, fmt.Errorf("address override %q: port %q", raw, p)
		}
	}
	if len(fs.hostKeys) > 0 && protocol != "sftp" {
		return fileServer{}, fmt.Errorf("address override %q: host keys pin sftp servers only", raw)
	}
	return fs, nil
}
