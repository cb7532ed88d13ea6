package spec

import (
	"cmp"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// File sources (protocol ftp or sftp): a directory on a file server that
// flows list, fetch files from and look records up in. The transport block
// (ftp or sftp) says how to reach the server; it is sent to the connector
// process. The Source's own maxFileSize, timeout, cache and operations say
// what the engine does with the files (engine/connector/file).

// FTPSource is the transport of a source of protocol ftp (FTPS with tls).
type FTPSource struct {
	At       map[string]Pos // position of each key's value
	Pos      Pos
	Host     string  `yaml:"host,required"`
	Port     int     `yaml:"port"` // default 21
	User     string  `yaml:"user"` // default anonymous
	Password *Secret `yaml:"password"`
	// TLS is "" (plain FTP) or "explicit" (AUTH TLS, then PROT P).
	TLS         string   `yaml:"tls"`
	CAFile      string   `yaml:"caFile"`     // CAs the server's certificate must chain to (default: the system's)
	ServerName  string   `yaml:"serverName"` // default host
	BaseDir     string   `yaml:"baseDir"`    // every path is confined below it (default /)
	Timeout     Duration `yaml:"timeout"`    // connecting and each command (default 10s)
	MaxConns    int      `yaml:"maxConns"`   // default 4
	DisableEPSV bool     `yaml:"disableEpsv"`
}

// SFTPSource is the transport of a source of protocol sftp.
type SFTPSource struct {
	At         map[string]Pos // position of each key's value
	Pos        Pos
	Host       string  `yaml:"host,required"`
	Port       int     `yaml:"port"` // default 22
	User       string  `yaml:"user,required"`
	Password   *Secret `yaml:"password"`
	PrivateKey *Secret `yaml:"privateKey"`
	Passphrase *Secret `yaml:"passphrase"`
	// HostKeys pin the server: the SHA-256 fingerprints its host key may
	// have ("SHA256:…", as ssh-keygen -lf prints them). Required.
	HostKeys []string `yaml:"hostKeys"`
	BaseDir  string   `yaml:"baseDir"` // default: the login directory
	Timeout  Duration `yaml:"timeout"` // connecting and each operation (default 10s)
}

// FileCache bounds the cache of a file source's decoded files.
type FileCache struct {
	At       map[string]Pos
	Pos      Pos
	TTL      CacheTTL `yaml:"ttl"`      // default 1m
	MaxBytes ByteSize `yaml:"maxBytes"` // default 64MiB
}

// CacheTTL is how long a fetched file is used without asking the server:
// a duration, or -1 (or 0) for no cache. The zero value is "not given";
// an explicit 0 or -1 is stored as -1.
type CacheTTL time.Duration

// D returns the value as a time.Duration (negative: no cache).
func (v CacheTTL) D() time.Duration { return time.Duration(v) }

func (v *CacheTTL) fromYAML(d *decoder, n ast.Node) {
	s, ok := scalarText(n)
	if !ok {
		d.errorf(n, "expected a duration such as \"1m\", or -1 for no cache, found %s", describe(n))
		return
	}
	if s == "-1" || s == "0" {
		*v = -1
		return
	}
	x, err := time.ParseDuration(s)
	if err != nil || x < 0 {
		d.errorf(n, "invalid ttl %q: write a duration such as \"30s\" or \"5m\", or -1 for no cache", s)
		return
	}
	*v = CacheTTL(x)
	if x == 0 {
		*v = -1
	}
}

// FileOperation is one named operation of a file source.
type FileOperation struct {
	At   map[string]Pos // position of each key's value
	Pos  Pos
	Name string `yaml:"-"`
	// Kind is list, fetch or lookup.
	Kind string `yaml:"kind,required"`
	// Dir is the directory, relative to the transport's baseDir.
	Dir string `yaml:"dir"`
	// Pattern filters names (*, ?, [a-z]); fetch and lookup read the
	// newest matching file unless File or the request names one.
	Pattern string `yaml:"pattern"`
	// File fixes the file of a fetch or a lookup.
	File string `yaml:"file"`
	// Codec decodes the file into records: required for lookup, optional
	// for fetch (without it, a fetch answers the content in base64).
	Codec *FileCodec `yaml:"codec"`
	// Keys are the record fields a lookup matches, one query parameter each.
	Keys        []string `yaml:"keys"`
	MaxFileSize ByteSize `yaml:"maxFileSize"` // overrides the source's
}

// FileCodec names the Plugin document whose module decodes a file
// (plugins/csv, plugins/fixedwidth: operation decode) and its configuration.
type FileCodec struct {
	At     map[string]Pos
	Pos    Pos
	Plugin string `yaml:"plugin,required"`
	Config *Value `yaml:"config"` // merged over the plugin's own config
}

// Defaults of file sources (engine/connector/file and engine/wasm say the
// same; engine/sources tests that they agree).
const (
	DefaultFileMaxSize    = 16 << 20  // file.DefaultMaxFileSize
	DefaultPluginMaxInput = 256 << 10 // wasm.DefaultMaxInput
)

// FileOperationKinds are the kinds a file operation may have.
var FileOperationKinds = []string{"list", "fetch", "lookup"}

// IsFile reports whether the source is a file source (ftp or sftp).
func (s *Source) IsFile() bool { return s.Protocol == "ftp" || s.Protocol == "sftp" }

// FileMaxSize is the largest file an operation reads: its own
// maxFileSize, else its source's, else the default.
func (s *Source) FileMaxSize(op *FileOperation) int64 {
	switch {
	case op != nil && op.MaxFileSize > 0:
		return int64(op.MaxFileSize)
	case s.MaxFileSize > 0:
		return int64(s.MaxFileSize)
	}
	return DefaultFileMaxSize
}

// QueryParams are the query parameters a call of the operation may give:
// a lookup's keys, and file (fetch, lookup).
func (op *FileOperation) QueryParams() []string {
	switch op.Kind {
	case "lookup":
		return append(slices.Clone(op.Keys), "file")
	case "fetch":
		return []string{"file"}
	}
	return nil
}

// fileOnly are the Source keys that only file sources take.
var fileOnly = []string{"maxFileSize", "timeout", "cache", "operations"}

// fileBlocks reports transport blocks and keys that the source's protocol
// does not take (every protocol; rest and soap check each other's).
func (c *checker) fileBlocks(src *Source) {
	if src.FTP != nil && src.Protocol != "ftp" {
		c.errorf(where(src.At, "ftp", src.Pos), "source %q of protocol %s takes no \"ftp\" block", src.Name, src.Protocol)
	}
	if src.SFTP != nil && src.Protocol != "sftp" {
		c.errorf(where(src.At, "sftp", src.Pos), "source %q of protocol %s takes no \"sftp\" block", src.Name, src.Protocol)
	}
	if src.IsFile() || src.Protocol == "" {
		return
	}
	for _, k := range fileOnly {
		if at, ok := src.At[k]; ok {
			hint := ""
			switch {
			case src.Protocol == "rest" && (k == "operations" || k == "timeout"):
				hint = ": write it under rest:"
			case src.Protocol == "soap" && k == "timeout":
				hint = ": write it under soap:"
			}
			c.errorf(at, "%q belongs to file sources (protocol ftp or sftp), not to a %s source%s", k, src.Protocol, hint)
		}
	}
}

// fileSource checks a source of protocol ftp or sftp.
func (c *checker) fileSource(src *Source) {
	for _, k := range []string{"rest", "soap"} {
		if at, ok := src.At[k]; ok {
			c.errorf(at, "source %q of protocol %s takes an %q block, not %q", src.Name, src.Protocol, src.Protocol, k)
		}
	}
	switch {
	case src.Protocol == "ftp" && src.FTP == nil:
		c.errorf(src.Pos, "source %q of protocol ftp needs an \"ftp\" block (host, user, password …)", src.Name)
	case src.Protocol == "ftp":
		c.ftp(src.FTP)
	case src.SFTP == nil:
		c.errorf(src.Pos, "source %q of protocol sftp needs an \"sftp\" block (host, user, password or privateKey, hostKeys …)", src.Name)
	default:
		c.sftp(src.SFTP)
	}
	if len(src.Operations) == 0 {
		c.errorf(src.Pos, "file source %q needs operations (each of kind list, fetch or lookup)", src.Name)
	}
	for _, name := range sortedKeys(src.Operations) {
		op := src.Operations[name]
		op.Name = name
		c.fileOperation(src, op)
	}
}

// host checks a server name: a name or an address, not a URL.
func (c *checker) fileHost(at map[string]Pos, pos Pos, host string, port int) {
	if strings.Contains(host, "://") || strings.ContainsAny(host, "/ @") {
		c.errorf(where(at, "host", pos), "host %q must be a host name or an address, not a URL (the port goes under port)", host)
	}
	if port < 0 || port > 65535 {
		c.errorf(where(at, "port", pos), "port %d is not a TCP port", port)
	}
}

// baseDir: a server path without "..".
func (c *checker) baseDir(at map[string]Pos, pos Pos, dir string) {
	if slices.Contains(strings.Split(dir, "/"), "..") || strings.ContainsAny(dir, "\\\x00") {
		c.errorf(where(at, "baseDir", pos), "baseDir %q must not contain \"..\" or a backslash", dir)
	}
}

var ftpTLS = []string{"explicit"}

func (c *checker) ftp(f *FTPSource) {
	c.fileHost(f.At, f.Pos, f.Host, f.Port)
	c.baseDir(f.At, f.Pos, f.BaseDir)
	if f.Password != nil {
		c.secret(where(f.At, "password", f.Pos), "password", f.Password)
	}
	switch f.TLS {
	case "", "explicit":
	case "implicit":
		c.errorf(where(f.At, "tls", f.Pos), "tls %q (FTPS on port 990) is not supported: use explicit (AUTH TLS), or \"\" for plain FTP", f.TLS)
	default:
		c.errorf(where(f.At, "tls", f.Pos), "tls %q is unknown: use explicit (AUTH TLS, then PROT P), or leave it out for plain FTP%s", f.TLS, suggest(f.TLS, ftpTLS))
	}
	if f.TLS == "" {
		for _, k := range []string{"caFile", "serverName"} {
			if at, ok := f.At[k]; ok {
				c.errorf(at, "%s applies to FTPS only: add tls: explicit", k)
			}
		}
	}
	if f.MaxConns < 0 || f.MaxConns > 64 {
		c.errorf(where(f.At, "maxConns", f.Pos), "maxConns must be between 1 and 64")
	}
}

// fingerprintRe is a SHA-256 host key fingerprint as ssh-keygen -lf prints it.
var fingerprintRe = regexp.MustCompile(`^SHA256:[A-Za-z0-9+/]{43}$`)

func (c *checker) sftp(s *SFTPSource) {
	c.fileHost(s.At, s.Pos, s.Host, s.Port)
	c.baseDir(s.At, s.Pos, s.BaseDir)
	if s.Password == nil && s.PrivateKey == nil {
		c.errorf(s.Pos, "sftp needs a password or a privateKey, each a secret ({env: NAME} or {file: path})")
	}
	for k, sec := range map[string]*Secret{"password": s.Password, "privateKey": s.PrivateKey, "passphrase": s.Passphrase} {
		if sec != nil {
			c.secret(where(s.At, k, s.Pos), k, sec)
		}
	}
	if s.Passphrase != nil && s.PrivateKey == nil {
		c.errorf(where(s.At, "passphrase", s.Pos), "passphrase unlocks a privateKey: give the privateKey too")
	}
	if len(s.HostKeys) == 0 {
		c.errorf(where(s.At, "hostKeys", s.Pos), "sftp needs hostKeys: pin the server's host key by its SHA-256 fingerprint, e.g. hostKeys: [\"SHA256:…\"] as `ssh-keyscan -t ed25519 %s | ssh-keygen -lf -` prints it; an unpinned server is never trusted", cmp.Or(s.Host, "HOST"))
	}
	for _, k := range s.HostKeys {
		if !fingerprintRe.MatchString(k) {
			c.errorf(where(s.At, "hostKeys", s.Pos), "host key %q is not a SHA-256 fingerprint: write \"SHA256:\" and 43 base64 characters, as ssh-keygen -lf prints it (MD5 fingerprints and raw keys are refused)", k)
		}
	}
}

// plainFileName: a file name without a directory part or control characters.
func plainFileName(s string) bool {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\") {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}

func (c *checker) fileOperation(src *Source, op *FileOperation) {
	bad := func(key, format string, args ...any) {
		c.errorf(where(op.At, key, op.Pos), "operation %q: "+format, append([]any{op.Name}, args...)...)
	}
	if !identRe.MatchString(op.Name) {
		c.errorf(op.Pos, "operation name %q must be an identifier: flows call %s.<operation>", op.Name, src.Name)
	}
	switch op.Kind {
	case "list", "fetch", "lookup", "":
	default:
		bad("kind", "kind %q is unknown; use list, fetch or lookup%s", op.Kind, suggest(op.Kind, FileOperationKinds))
		return
	}
	if op.Pattern != "" {
		if _, err := path.Match(op.Pattern, ""); err != nil {
			bad("pattern", "pattern %q is malformed (use *, ? and [a-z])", op.Pattern)
		}
	}
	if strings.HasPrefix(op.Dir, "/") || slices.Contains(strings.Split(op.Dir, "/"), "..") || strings.ContainsAny(op.Dir, "\\\x00") {
		bad("dir", "dir %q must be relative to the source's baseDir, without \"..\"", op.Dir)
	}
	if op.File != "" {
		if !plainFileName(op.File) {
			bad("file", "file %q must be a plain file name: put directories in dir", op.File)
		} else if ok, _ := path.Match(op.Pattern, op.File); op.Pattern != "" && !ok {
			bad("file", "file %q does not match the operation's pattern %q", op.File, op.Pattern)
		}
	}
	switch op.Kind {
	case "list":
		for _, k := range []string{"file", "codec", "keys", "maxFileSize"} {
			if _, ok := op.At[k]; ok {
				bad(k, "a list takes dir and pattern only, not %s", k)
			}
		}
		return
	case "fetch":
		if _, ok := op.At["keys"]; ok {
			bad("keys", "keys belong to a lookup (kind: lookup)")
		}
	case "lookup":
		if op.Codec == nil {
			bad("kind", "a lookup needs a codec to read records (codec: {plugin: csv, config: …})")
		}
		if len(op.Keys) == 0 {
			bad("kind", "a lookup needs keys: the record fields a call matches, e.g. keys: [enterpriseNumber]")
		}
		seen := map[string]bool{}
		for _, k := range op.Keys {
			switch {
			case k == "file":
				bad("keys", "key %q is reserved: a call names a file with it", k)
			case !identRe.MatchString(k):
				bad("keys", "key %q must be an identifier (a record field, and a query parameter of the call)", k)
			case seen[k]:
				bad("keys", "key %q is listed twice", k)
			}
			seen[k] = true
		}
	}
	cd := op.Codec
	if cd == nil {
		return
	}
	if cd.Config != nil {
		if m, ok := cd.Config.V.(map[string]any); !ok {
			c.errorf(cd.Config.Pos, "codec config must be a mapping")
		} else {
			c.inlineSecrets(cd.Config, m)
		}
	}
	pl := c.set.Plugins[cd.Plugin]
	if pl == nil {
		if cd.Plugin != "" {
			c.errorf(where(cd.At, "plugin", cd.Pos), "no plugin named %q for the codec of operation %q%s (declare plugins/csv/csv.wasm or plugins/fixedwidth/fixedwidth.wasm in a Plugin document)", cd.Plugin, op.Name, suggest(cd.Plugin, sortedKeys(c.set.Plugins)))
		}
		return
	}
	maxInput := int64(DefaultPluginMaxInput)
	if pl.Limits != nil && pl.Limits.MaxInput > 0 {
		maxInput = int64(pl.Limits.MaxInput)
	}
	if size := src.FileMaxSize(op); maxInput < size {
		at, what := where(src.At, "maxFileSize", src.Pos), "the source's maxFileSize"
		if op.MaxFileSize > 0 {
			at, what = where(op.At, "maxFileSize", op.Pos), "its maxFileSize"
		} else if src.MaxFileSize == 0 {
			at, what = where(cd.At, "plugin", cd.Pos), "the default maxFileSize"
		}
		c.errorf(at, "operation %q: codec plugin %q reads at most %s (limits.maxInput) but %s is %s: the codec needs the whole file; raise the plugin's maxInput (and maxMemory) or lower maxFileSize", op.Name, cd.Plugin, showSize(maxInput), what, showSize(size))
	}
}

// showSize writes a byte count the way documents do (16MiB, 256KiB).
func showSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + "MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + "KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// fileCall checks a call step to an operation of a file source: the
// operation exists, and the call gives query parameters only — every key
// of a lookup, optionally file.
func (c *checker) fileCall(st *Step, src *Source) {
	_, opName, _ := strings.Cut(st.Call, ".")
	op := src.Operations[opName]
	if op == nil {
		c.errorf(where(st.At, "call", st.Pos), "call %q: file source %q has no operation %q%s", st.Call, src.Name, opName, suggest(opName, sortedKeys(src.Operations)))
		return
	}
	w := st.With
	if w != nil {
		if len(w.Path) > 0 {
			c.errorf(where(w.At, "path", w.Pos), "call %q: a file operation takes query parameters only, not path", st.Call)
		}
		if w.Body != nil {
			c.errorf(w.Body.Pos, "call %q: a file operation takes query parameters only, not a body", st.Call)
		}
		if len(w.Headers) > 0 {
			c.errorf(where(w.At, "headers", w.Pos), "call %q: a file operation sends no headers", st.Call)
		}
	}
	var given map[string]*Expr
	at := where(st.At, "call", st.Pos)
	if w != nil {
		given, at = w.Query, where(w.At, "query", w.Pos)
	}
	allowed := op.QueryParams()
	for _, k := range sortedKeys(given) {
		if slices.Contains(allowed, k) {
			continue
		}
		switch {
		case len(allowed) == 0:
			c.errorf(given[k].Pos, "call %q: a %s takes no query parameters (%q)", st.Call, op.Kind, k)
		default:
			hint := suggest(k, allowed)
			if !strings.HasPrefix(hint, ";") {
				hint = "; it takes " + strings.Join(allowed, ", ")
			}
			c.errorf(given[k].Pos, "call %q: operation %q has no query parameter %q%s", st.Call, opName, k, hint)
		}
	}
	if op.Kind == "lookup" {
		for _, k := range op.Keys {
			if given[k] == nil {
				c.errorf(at, "call %q needs query parameter %q, a key of the lookup (with: query: {%s: <expression>})", st.Call, k, k)
			}
		}
	}
}

// fileMock checks a test's mock of a file operation.
func (c *checker) fileMock(m *Mock, src *Source, opName string) {
	if src.Operations[opName] == nil {
		c.errorf(where(m.At, "call", m.Pos), "mock %q: file source %q has no operation %q%s", m.Call, src.Name, opName, suggest(opName, sortedKeys(src.Operations)))
	}
	if m.Match != nil && (len(m.Match.Path) > 0 || m.Match.Body != nil) {
		c.errorf(m.Match.Pos, "mock %q: a file operation is called with query parameters only: match on query", m.Call)
	}
}
