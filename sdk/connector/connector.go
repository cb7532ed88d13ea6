// Package connector is what an author of a native connector implements: a
// file transport (FTP, SFTP, …) that runs in its own process, outside the
// WebAssembly sandbox, because it needs sockets. The engine launches that
// process with hashicorp/go-plugin, talks to it over gRPC (this package
// holds both sides of the wire) and supervises it (engine/plugin).
//
// A plugin's main registers its drivers and serves:
//
//	func main() { connector.Serve(ftp.Driver{}, sftp.Driver{}) }
//
// A Driver turns an endpoint's configuration (JSON, its own format) into a
// Store; a Store lists the regular files of a directory and opens one file
// for reading. Paths are relative to the endpoint's base directory, and a
// Store must never reach outside it (Confine does the checking).
//
// This package knows nothing of flows, sources or the engine: only files.
package connector

import (
	"context"
	"errors"
	"io"
	"time"
)

// FileInfo describes one regular file.
type FileInfo struct {
	Name    string    `json:"name"` // the base name
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
}

// Driver opens stores for one protocol. Implementations are safe for
// concurrent use.
type Driver interface {
	// Protocol names what the driver speaks: "ftp", "sftp".
	Protocol() string
	// Open checks config and returns a Store bound to it. It may connect
	// lazily: a source that is down must not make Open fail, only calls.
	// Secrets are in config: the host read them, the plugin has no
	// environment to read them from.
	Open(ctx context.Context, config []byte) (Store, error)
}

// Store reaches the files of one endpoint. Implementations are safe for
// concurrent use and bound every call by ctx.
type Store interface {
	// List returns the regular files directly in dir ("" or "." is the base
	// directory), in any order. Directories and links are left out.
	List(ctx context.Context, dir string) ([]FileInfo, error)
	// Open opens the file name (it may hold a directory part) for reading.
	// The reader must be closed; reading it after ctx ends fails.
	Open(ctx context.Context, name string) (io.ReadCloser, FileInfo, error)
	// Check probes reachability (connect and log in); nil means reachable.
	Check(ctx context.Context) error
	// Close releases the store's connections.
	Close() error
}

// Errors a Store returns, wrapped, so that the host can classify them: they
// travel over the wire as gRPC status codes and come back as themselves.
var (
	ErrNotFound    = errors.New("file not found")
	ErrOutsideBase = errors.New("path outside the base directory")
	ErrTooLarge    = errors.New("file exceeds the maximum size")
	ErrPermission  = errors.New("permission denied")
	ErrUnavailable = errors.New("server unreachable")
	ErrAuth        = errors.New("authentication failed")
	ErrHostKey     = errors.New("host key not trusted")
	ErrConfig      = errors.New("invalid endpoint configuration")
	// ErrUnknownEndpoint: the process does not know the endpoint (it was
	// restarted); the host opens it again.
	ErrUnknownEndpoint = errors.New("unknown endpoint")
	// ErrPluginDown: the connector process is not running (it crashed and
	// is being restarted, or it was stopped). Set by the host side.
	ErrPluginDown = errors.New("connector process unavailable")
)

// kinds lists the sentinels in the order of their wire reasons.
var kinds = []struct {
	err    error
	reason string
}{
	{ErrNotFound, "NOT_FOUND"},
	{ErrOutsideBase, "OUTSIDE_BASE"},
	{ErrTooLarge, "TOO_LARGE"},
	{ErrPermission, "PERMISSION"},
	{ErrUnavailable, "UNAVAILABLE"},
	{ErrAuth, "AUTH"},
	{ErrHostKey, "HOST_KEY"},
	{ErrConfig, "CONFIG"},
	{ErrUnknownEndpoint, "UNKNOWN_ENDPOINT"},
	{context.DeadlineExceeded, "DEADLINE"},
	{context.Canceled, "CANCELED"},
}

// Info describes a connector process, for fsb plugin inspect.
type Info struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Protocols []string `json:"protocols"`
	PID       int      `json:"pid"`
}
