package file

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	sdk "github.com/openfsb/fsb/sdk/connector"
	"github.com/openfsb/fsb/sdk/jsonx"
	"github.com/valyala/fastjson"
)

// Connector is a file source. It implements connector.Connector.
type Connector struct {
	source  string
	store   Store
	maxSize int64
	timeout time.Duration
	ops     map[string]*Operation
	cache   *cache
	now     func() time.Time
}

// New checks cfg and returns the source's connector.
func New(cfg Config) (*Connector, error) {
	switch {
	case cfg.Store == nil:
		return nil, fmt.Errorf("file source %q: no store", cfg.Source)
	case cfg.MaxFileSize < 0 || cfg.Timeout < 0:
		return nil, fmt.Errorf("file source %q: maxFileSize and timeout must not be negative", cfg.Source)
	case len(cfg.Operations) == 0:
		return nil, fmt.Errorf("file source %q: no operations", cfg.Source)
	}
	c := &Connector{
		source: cfg.Source, store: cfg.Store, maxSize: cfg.MaxFileSize, timeout: cfg.Timeout,
		ops: map[string]*Operation{}, cache: newCache(cfg.Cache), now: time.Now,
	}
	if c.maxSize == 0 {
		c.maxSize = DefaultMaxFileSize
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	for name, op := range cfg.Operations {
		if err := op.check(name); err != nil {
			return nil, fmt.Errorf("file source %q: %w", cfg.Source, err)
		}
		op.Keys = append([]string(nil), op.Keys...)
		c.ops[name] = &op
	}
	return c, nil
}

// CacheStats reports the cache's state and counters.
func (c *Connector) CacheStats() CacheStats { return c.cache.snapshot() }

// Call runs an operation. Request parameters are query values: "file"
// picks a file (fetch, lookup), and each of a lookup's keys its value. A
// missing file, or a lookup that matches no record, is a 404 answer, not
// an error.
func (c *Connector) Call(ctx context.Context, req *connector.Request) (*connector.Response, error) {
	op, ok := c.ops[req.Operation]
	if !ok {
		return nil, c.fail(req.Operation, connector.ErrUnknownOp, "", nil)
	}
	dl := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(dl) {
		dl = d
	}
	// A context of its own with a Done channel: the executor may pass one
	// that only its deadline ends.
	ctx, cancel := context.WithDeadline(ctx, dl)
	defer cancel()
	var body []byte
	status := 200
	var err error
	switch op.Kind {
	case List:
		body, err = c.list(ctx, op)
	case Fetch, Lookup:
		body, status, err = c.file(ctx, op, req)
	}
	if err != nil {
		return nil, c.classify(req.Operation, err)
	}
	return &connector.Response{
		Status:   status,
		Headers:  connector.Headers{{Name: "Content-Type", Value: "application/json"}},
		Body:     body,
		Attempts: 1,
	}, nil
}

// Check probes the store.
func (c *Connector) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if err := c.store.Check(ctx); err != nil {
		return c.classify("check", err)
	}
	return nil
}

// Close does nothing: the store belongs to whoever made it (the
// supervisor closes processes).
func (c *Connector) Close() error { return nil }

func (c *Connector) list(ctx context.Context, op *Operation) ([]byte, error) {
	files, err := c.listing(ctx, op.Dir)
	if err != nil {
		return nil, err
	}
	out := []byte(`{"files":[`)
	n := 0
	for _, f := range files {
		if op.Pattern != "" {
			if ok, _ := path.Match(op.Pattern, f.Name); !ok {
				continue
			}
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = appendInfo(out, f)
	}
	return append(out, "]}"...), nil
}

// listing returns dir's files sorted by name, from the cache when fresh.
func (c *Connector) listing(ctx context.Context, dir string) ([]sdk.FileInfo, error) {
	key := "list\x00" + dir
	if e, fresh := c.cache.get(key, c.now()); fresh {
		c.cache.stats.hits.Add(1)
		return e.files, nil
	}
	e, err := c.cache.load(ctx, key, func() (*entry, error) {
		files, err := c.store.List(ctx, dir)
		if err != nil {
			return nil, err
		}
		sort.Slice(files, func(i, j int) bool { return files[i].Name < files[j].Name })
		return &entry{files: files, checked: c.now(), size: int64(len(files))*96 + 64}, nil
	})
	if err != nil {
		return nil, err
	}
	return e.files, nil
}

// pick names the file an operation reads: the request's, the fixed one,
// or the newest that matches the pattern. known is the file's listing
// entry when a listing was read.
func (c *Connector) pick(ctx context.Context, op *Operation, req *connector.Request) (name string, known *sdk.FileInfo, err error) {
	if n := req.Query["file"]; n != "" {
		if !plainName(n) {
			return "", nil, fmt.Errorf("%w: file %q is not a plain file name", connector.ErrBadRequest, n)
		}
		if op.Pattern != "" {
			if ok, _ := path.Match(op.Pattern, n); !ok {
				return "", nil, fmt.Errorf("%w: file %q does not match the operation's pattern", connector.ErrBadRequest, n)
			}
		}
		return n, nil, nil
	}
	if op.File != "" {
		return op.File, nil, nil
	}
	files, err := c.listing(ctx, op.Dir)
	if err != nil {
		return "", nil, err
	}
	var best *sdk.FileInfo
	for i := range files {
		f := &files[i]
		if op.Pattern != "" {
			if ok, _ := path.Match(op.Pattern, f.Name); !ok {
				continue
			}
		}
		if best == nil || f.ModTime.After(best.ModTime) || (f.ModTime.Equal(best.ModTime) && f.Name > best.Name) {
			best = f
		}
	}
	if best == nil {
		return "", nil, errNoFile
	}
	return best.Name, best, nil
}

// file serves fetch and lookup.
func (c *Connector) file(ctx context.Context, op *Operation, req *connector.Request) ([]byte, int, error) {
	var want []string
	if op.Kind == Lookup {
		for _, k := range op.Keys {
			v, ok := req.Query[k]
			if !ok {
				return nil, 0, fmt.Errorf("%w: the lookup needs the query parameter %q", connector.ErrBadRequest, k)
			}
			want = append(want, v)
		}
	}
	name, known, err := c.pick(ctx, op, req)
	if errors.Is(err, errNoFile) {
		return []byte(`{"records":[]}`), 404, nil
	}
	if err != nil {
		return nil, 0, err
	}
	e, err := c.decoded(ctx, op, req.Operation, name, known)
	if errors.Is(err, sdk.ErrNotFound) {
		return []byte(`{"records":[]}`), 404, nil
	}
	if err != nil {
		return nil, 0, err
	}
	out := append([]byte(`{"file":`), appendInfo(nil, e.info)...)
	switch {
	case op.Kind == Fetch && op.Codec == nil:
		out = append(out, `,"content":"`...)
		out = base64.StdEncoding.AppendEncode(out, e.content)
		return append(out, `"}`...), 200, nil
	case op.Kind == Fetch:
		out = append(out, `,"records":[`...)
		if len(e.spans) > 0 {
			out = append(out, e.buf[e.spans[0][0]:e.spans[len(e.spans)-1][1]]...)
		}
		return append(out, "]}"...), 200, nil
	}
	hits := e.index[lookupKey(want)]
	out = append(out, `,"records":[`...)
	for i, r := range hits {
		if i > 0 {
			out = append(out, ',')
		}
		s := e.spans[r]
		out = append(out, e.buf[s[0]:s[1]]...)
	}
	out = append(out, "]}"...)
	if len(hits) == 0 {
		return out, 404, nil
	}
	return out, 200, nil
}

// decoded returns the operation's decoded file, from the cache when it is
// fresh or a listing shows it unchanged, else downloaded and decoded.
func (c *Connector) decoded(ctx context.Context, op *Operation, opName, name string, known *sdk.FileInfo) (*entry, error) {
	key := "file\x00" + opName + "\x00" + path.Join(op.Dir, name)
	now := c.now()
	if e, fresh := c.cache.get(key, now); e != nil {
		if fresh {
			c.cache.stats.hits.Add(1)
			return e, nil
		}
		// Stale: one listing tells whether the file changed.
		if known == nil {
			if files, err := c.listing(ctx, op.Dir); err == nil {
				for i := range files {
					if files[i].Name == name {
						known = &files[i]
					}
				}
				if known == nil {
					return nil, sdk.ErrNotFound
				}
			}
		}
		if known != nil && known.Size == e.info.Size && known.ModTime.Equal(e.info.ModTime) {
			c.cache.confirm(e, now)
			return e, nil
		}
	}
	return c.cache.load(ctx, key, func() (*entry, error) { return c.download(ctx, op, name) })
}

// download fetches a file within the size limit and decodes it.
func (c *Connector) download(ctx context.Context, op *Operation, name string) (*entry, error) {
	limit := c.maxSize
	if op.MaxFileSize > 0 {
		limit = op.MaxFileSize
	}
	rc, info, err := c.store.Fetch(ctx, path.Join(op.Dir, name), limit)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	if info.Size > limit {
		return nil, fmt.Errorf("%w: %d bytes, the maximum is %d", sdk.ErrTooLarge, info.Size, limit)
	}
	buf := bytes.NewBuffer(make([]byte, 0, max(info.Size, 0)+1))
	n, err := buf.ReadFrom(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if n > limit {
		return nil, fmt.Errorf("%w: more than %d bytes", sdk.ErrTooLarge, limit)
	}
	raw := buf.Bytes()
	info.Size = n
	e := &entry{info: info, checked: c.now()}
	if op.Codec == nil {
		e.content, e.size = raw, n+256
		return e, nil
	}
	doc, err := op.Codec.Decode(ctx, raw, op.CodecConfig)
	if err != nil {
		return nil, fmt.Errorf("%w: decode %s: %v", connector.ErrBadResponse, name, err)
	}
	if err := e.build(doc, op.Keys); err != nil {
		return nil, fmt.Errorf("%w: decode %s: %v", connector.ErrBadResponse, name, err)
	}
	return e, nil
}

// build splits the codec's JSON array into records and indexes them by
// keys. A key value is a string's text, a number's JSON text, true or
// false; records whose key is missing, null or an object are not indexed.
func (e *entry) build(doc []byte, keys []string) error {
	var p fastjson.Parser
	v, err := p.ParseBytes(doc)
	if err != nil {
		return fmt.Errorf("the codec's output is not JSON: %v", err)
	}
	arr, err := v.Array()
	if err != nil {
		return errors.New("the codec's output is not an array of records")
	}
	e.buf = make([]byte, 0, len(doc))
	e.spans = make([][2]uint32, 0, len(arr))
	if len(keys) > 0 {
		e.index = make(map[string][]uint32, len(arr))
	}
	var parts []string
	for i, r := range arr {
		start := len(e.buf)
		e.buf = jsonx.AppendValue(e.buf, r)
		if len(e.buf) > 1<<32-1 {
			return errors.New("decoded records exceed 4 GiB")
		}
		e.spans = append(e.spans, [2]uint32{uint32(start), uint32(len(e.buf))})
		if len(keys) == 0 {
			continue
		}
		parts = parts[:0]
		for _, k := range keys {
			kv := r.Get(k)
			if kv == nil {
				break
			}
			switch kv.Type() {
			case fastjson.TypeString:
				parts = append(parts, string(kv.GetStringBytes()))
			case fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
				parts = append(parts, kv.String())
			}
		}
		if len(parts) == len(keys) {
			k := lookupKey(parts)
			e.index[k] = append(e.index[k], uint32(i))
		}
	}
	e.size = int64(len(e.buf)) + int64(len(e.spans))*8 + int64(len(e.index))*48 + 256
	return nil
}

func lookupKey(parts []string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	var b []byte
	for i, p := range parts {
		if i > 0 {
			b = append(b, 0)
		}
		b = append(b, p...)
	}
	return string(b)
}

func appendInfo(out []byte, f sdk.FileInfo) []byte {
	out = append(out, `{"name":`...)
	out = jsonx.AppendString(out, f.Name)
	out = append(out, `,"size":`...)
	out = strconv.AppendInt(out, f.Size, 10)
	if !f.ModTime.IsZero() {
		out = append(out, `,"modTime":"`...)
		out = f.ModTime.UTC().AppendFormat(out, time.RFC3339)
		out = append(out, '"')
	}
	return append(out, '}')
}

// classify wraps err in a connector.Error whose message is safe for a
// consumer: the kind, and a detail without host names or paths.
func (c *Connector) classify(op string, err error) error {
	var ce *connector.Error
	if errors.As(err, &ce) {
		return err
	}
	kinds := []struct {
		is     error
		kind   error
		detail string
	}{
		{connector.ErrBadRequest, connector.ErrBadRequest, "bad file request"},
		{connector.ErrBadResponse, connector.ErrBadResponse, "the file could not be decoded"},
		{sdk.ErrTooLarge, connector.ErrTooLarge, ""},
		{sdk.ErrOutsideBase, connector.ErrBadRequest, "path outside the source's directory"},
		{sdk.ErrPluginDown, connector.ErrUnavailable, "the connector process is restarting"},
		{sdk.ErrAuth, connector.ErrUnavailable, "authentication with the file server failed"},
		{sdk.ErrHostKey, connector.ErrUnavailable, "the file server's host key is not the pinned one"},
		{sdk.ErrConfig, connector.ErrUnavailable, "the source's configuration is invalid"},
		{sdk.ErrPermission, connector.ErrUnavailable, "permission denied by the file server"},
		{context.DeadlineExceeded, connector.ErrTimeout, ""},
		{context.Canceled, connector.ErrTimeout, "cancelled"},
		{sdk.ErrUnavailable, connector.ErrUnavailable, ""},
	}
	for _, k := range kinds {
		if errors.Is(err, k.is) {
			return c.fail(op, k.kind, k.detail, err)
		}
	}
	return c.fail(op, connector.ErrUnavailable, "file transfer failed", err)
}

func (c *Connector) fail(op string, kind error, detail string, err error) error {
	return &connector.Error{Source: c.source, Operation: op, Kind: kind, Detail: detail, Err: err, Attempts: 1}
}

var _ connector.Connector = (*Connector)(nil)
