// Package file is the connector of file sources: files on an FTP or SFTP
// server (or any store a native connector offers), listed, fetched and
// looked up by flows like a REST operation. It implements
// connector.Connector. The transport runs elsewhere — in the supervised
// connector process (engine/plugin), behind the Store interface — and the
// bytes of a file are turned into JSON records by a codec (plugins/csv,
// plugins/fixedwidth, in the WASM sandbox or natively).
//
// Fetched files are cached, decoded, with a TTL and a byte cap, so that a
// flow looking one record up per request does not download the file per
// request. Files larger than the configured maximum are refused before
// they are read.
//
// The package must not know about flows, YAML or the gateway: a Config is
// filled by whoever reads the Source document (README.md shows the YAML).
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	sdk "github.com/openfsb/fsb/sdk/connector"
)

// Defaults.
const (
	DefaultMaxFileSize   = 16 << 20
	DefaultTimeout       = 30 * time.Second
	DefaultCacheTTL      = time.Minute
	DefaultCacheMaxBytes = 64 << 20
)

// Kind is what an operation does.
type Kind string

// Kinds.
const (
	List   Kind = "list"   // the files of a directory: {"files":[{name,size,modTime}]}
	Fetch  Kind = "fetch"  // one file: {"file":{...},"records":[...]} (or "content", base64, without a codec)
	Lookup Kind = "lookup" // the records of one file whose key fields equal the request's: {"file":{...},"records":[...]}
)

// Config describes one file source.
type Config struct {
	Source string // the source's name, for errors and logs
	Store  Store  // where the files are: a *plugin.Endpoint, or Local(driver store)
	// MaxFileSize refuses larger files (connector.ErrTooLarge) before a
	// byte of them is read (default 16 MiB). It is also the codec's input
	// size: a WASM codec's maxInput must be at least this.
	MaxFileSize int64
	// Timeout bounds a call, a download included (default 30s).
	Timeout time.Duration
	Cache   CacheConfig
	// Operations by name; a flow calls source.<name>.
	Operations map[string]Operation
}

// CacheConfig bounds the cache of decoded files and directory listings.
type CacheConfig struct {
	// TTL: how long a fetched file is used without asking the server;
	// after it, a listing (not a download) tells whether the file changed
	// (default 1m; negative: no cache).
	TTL time.Duration
	// MaxBytes caps the cache: raw decoded records and listings (default
	// 64 MiB). The least recently used files go first; a file larger than
	// the cap is not cached.
	MaxBytes int64
}

// Operation is one named operation of the source.
type Operation struct {
	Kind Kind
	// Dir is the directory, relative to the endpoint's base ("" is the base).
	Dir string
	// Pattern filters file names (path.Match syntax: *, ?, [a-z]). For
	// list it filters the listing; for fetch and lookup, when File is
	// empty and the request names no file, the newest matching file is
	// used; a name the request gives must match it too.
	Pattern string
	// File fixes the file of a fetch or lookup.
	File string
	// Codec decodes a fetched file into a JSON array of records; required
	// for lookup, optional for fetch. CodecConfig is its configuration.
	Codec       Codec
	CodecConfig []byte
	// Keys are the record fields a lookup matches, each against the
	// request's query parameter of the same name (all must be equal).
	Keys []string
	// MaxFileSize overrides the source's for this operation.
	MaxFileSize int64
}

// Store reaches the files. *plugin.Endpoint (a supervised connector
// process) implements it; Local adapts a driver running in this process.
type Store interface {
	List(ctx context.Context, dir string) ([]sdk.FileInfo, error)
	// Fetch opens a file; with maxBytes > 0 a larger file is refused
	// (sdk.ErrTooLarge) before it is read.
	Fetch(ctx context.Context, name string, maxBytes int64) (io.ReadCloser, sdk.FileInfo, error)
	Check(ctx context.Context) error
}

// Codec turns a file's bytes into a JSON array of objects.
type Codec interface {
	Decode(ctx context.Context, in, config []byte) ([]byte, error)
}

// Caller runs a module's operation; *wasm.Module is one.
type Caller interface {
	Call(ctx context.Context, op string, input, config []byte) ([]byte, error)
}

// ModuleCodec is a codec plugin in the sandbox: its decode operation.
type ModuleCodec struct{ Module Caller }

// Decode calls the module's decode operation.
func (m ModuleCodec) Decode(ctx context.Context, in, config []byte) ([]byte, error) {
	return m.Module.Call(ctx, "decode", in, config)
}

// Local adapts a driver's store that runs in this process (tests, a demo,
// a deployment that accepts transports in the engine).
func Local(st sdk.Store) Store { return local{st} }

type local struct{ st sdk.Store }

func (l local) List(ctx context.Context, dir string) ([]sdk.FileInfo, error) {
	return l.st.List(ctx, dir)
}

func (l local) Fetch(ctx context.Context, name string, maxBytes int64) (io.ReadCloser, sdk.FileInfo, error) {
	rc, info, err := l.st.Open(ctx, name)
	if err != nil {
		return nil, info, err
	}
	if maxBytes > 0 && info.Size > maxBytes {
		rc.Close()
		return nil, info, fmt.Errorf("%w: %d bytes, the maximum is %d", sdk.ErrTooLarge, info.Size, maxBytes)
	}
	return rc, info, nil
}

func (l local) Check(ctx context.Context) error { return l.st.Check(ctx) }

// check validates an operation.
func (op *Operation) check(name string) error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("operation %q: "+format, append([]any{name}, a...)...)
	}
	if op.Pattern != "" {
		if _, err := path.Match(op.Pattern, ""); err != nil {
			return bad("pattern %q: %v", op.Pattern, err)
		}
	}
	if _, err := sdk.Confine("/", op.Dir); err != nil {
		return bad("dir: %v", err)
	}
	if op.File != "" && !plainName(op.File) {
		return bad("file %q: a plain file name (put directories in dir)", op.File)
	}
	switch op.Kind {
	case List:
		if op.File != "" || op.Codec != nil || len(op.Keys) > 0 {
			return bad("list takes dir and pattern only")
		}
	case Fetch:
		if len(op.Keys) > 0 {
			return bad("keys belong to a lookup")
		}
	case Lookup:
		if op.Codec == nil {
			return bad("a lookup needs a codec to read records")
		}
		if len(op.Keys) == 0 {
			return bad("a lookup needs keys")
		}
		for _, k := range op.Keys {
			if k == "" || k == "file" {
				return bad("key %q: reserved or empty", k)
			}
		}
	default:
		return bad("kind %q: want list, fetch or lookup", op.Kind)
	}
	if op.MaxFileSize < 0 {
		return bad("maxFileSize must not be negative")
	}
	return nil
}

// plainName: a file name without a directory part or anything odd.
func plainName(s string) bool {
	if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\\") {
		return false
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

var errNoFile = errors.New("no matching file")
