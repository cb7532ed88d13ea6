package flowtest

import (
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/file"
	"github.com/openfsb/fsb/engine/spec"
)

// fileMock is what the mocks of a file source (ftp, sftp) add to the
// transport they replace. A mock's body is the operation's answer as the
// flow sees it ({"file":…,"records":[…]} for a fetch or lookup, {"files":
// […]} for a list); status 404 is "no such file or no matching record".
// The request is still checked as the file connector checks it — every
// key of a lookup given, a file a plain name that fits the pattern — and
// the source's timeout applies; a file source never retries by itself.
type fileMock struct {
	timeout time.Duration
	ops     map[string]*spec.FileOperation
}

// newFileMock returns nil for a source that is not a file source.
func newFileMock(src *spec.Source) *fileMock {
	if !src.IsFile() {
		return nil
	}
	f := &fileMock{timeout: src.Timeout.D(), ops: src.Operations}
	if f.timeout == 0 {
		f.timeout = file.DefaultTimeout
	}
	return f
}

// check returns the error the connector would return before it asked
// the server anything.
func (f *fileMock) check(source string, req *connector.Request) error {
	if f == nil {
		return nil
	}
	op := f.ops[req.Operation]
	bad := func(format string, a ...any) error {
		return &connector.Error{Source: source, Operation: req.Operation, Kind: connector.ErrBadRequest, Detail: "bad file request", Err: fmt.Errorf(format, a...)}
	}
	switch {
	case op == nil:
		return &connector.Error{Source: source, Operation: req.Operation, Kind: connector.ErrUnknownOp}
	case op.Kind == "list":
		return nil
	}
	if op.Kind == "lookup" {
		for _, k := range op.Keys {
			if _, ok := req.Query[k]; !ok {
				return bad("the lookup needs the query parameter %q", k)
			}
		}
	}
	if n := req.Query["file"]; n != "" {
		if n == "." || n == ".." || strings.ContainsAny(n, "/\\") {
			return bad("file %q is not a plain file name", n)
		}
		if ok, _ := path.Match(op.Pattern, n); op.Pattern != "" && !ok {
			return bad("file %q does not match the operation's pattern", n)
		}
	}
	return nil
}
