package spec

import (
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

var (
	identRe    = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	semverRe   = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)
	belgifPath = regexp.MustCompile(`^/([a-z][a-zA-Z0-9]*)/v([0-9]+)(/[a-zA-Z0-9{}._~-]+)*$`)
	paramRe    = regexp.MustCompile(`\{([^{}]*)\}`)
	methods    = map[string]bool{"GET": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "HEAD": true, "OPTIONS": true}
	// ProblemTypes maps the Belgif problem names a fail step may use to their default status.
	ProblemTypes = map[string]int{
		"badRequest": 400, "noAccessToken": 401, "invalidAccessToken": 401, "expiredAccessToken": 401,
		"missingScope": 403, "missingPermission": 403, "resourceNotFound": 404, "payloadTooLarge": 413,
		"tooManyRequests": 429, "internalServerError": 500, "badGateway": 502, "serviceUnavailable": 503,
		"conflict": 409, "unsupportedMediaType": 415, "notAcceptable": 406,
	}
)

// PathParams returns the {placeholder} names of a path template.
func PathParams(p string) []string {
	var out []string
	for _, m := range paramRe.FindAllStringSubmatch(p, -1) {
		out = append(out, m[1])
	}
	return out
}

// Major returns the major version of a semantic version string.
func Major(version string) int {
	m := semverRe.FindStringSubmatch(version)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

type checker struct {
	set  *Set
	errs *ErrorList
}

func (c *checker) errorf(pos Pos, format string, args ...any) {
	*c.errs = append(*c.errs, c.set.Src.Errorf(pos, format, args...))
}

func (s *Set) check(errs *ErrorList) {
	c := &checker{set: s, errs: errs}
	for _, name := range s.SourceNames() {
		c.source(s.Sources[name])
	}
	routes := map[string]*Flow{}
	for _, name := range s.FlowNames() {
		fl := s.Flows[name]
		c.flow(fl)
		key := fl.Method + " " + paramRe.ReplaceAllString(fl.Path, "{}")
		if prev, dup := routes[key]; dup && fl.Method != "" {
			c.errorf(fl.Pos, "flow %q has the same route %s %s as flow %q (%s)", fl.Name, fl.Method, fl.Path, prev.Name, prev.Pos)
		}
		routes[key] = fl
	}
	c.catalogueCodes() // catalog.go
	for _, name := range sortedKeys(s.Plugins) {
		c.plugin(s.Plugins[name])
	}
	for _, fl := range s.dupFlows {
		c.flow(fl) // a duplicate name is an error, but its other errors count too
	}
	names := map[string]bool{}
	for _, t := range s.Tests {
		c.test(t)
		if names[t.Flow+"\x00"+t.Name] {
			c.errorf(t.Pos, "duplicate test name %q for flow %q", t.Name, t.Flow)
		}
		names[t.Flow+"\x00"+t.Name] = true
	}
}

func (c *checker) source(src *Source) {
	if src.Name != "" && !identRe.MatchString(src.Name) {
		c.errorf(where(src.At, "name", src.Pos), "source name %q must be an identifier (letters, digits, _), e.g. personRegister", src.Name)
	}
	c.fileBlocks(src) // file.go
	switch src.Protocol {
	case "rest":
		if src.REST == nil {
			c.errorf(src.Pos, "source %q of protocol rest needs a \"rest\" block", src.Name)
			return
		}
		if src.SOAP != nil {
			c.errorf(where(src.At, "soap", src.Pos), "source %q of protocol rest takes a \"rest\" block, not \"soap\"", src.Name)
		}
	case "soap":
		c.soapSource(src) // soap.go
		return
	case "ftp", "sftp":
		c.fileSource(src) // file.go
		return
	case "":
		return // reported as missing
	default:
		c.errorf(where(src.At, "protocol", src.Pos), "protocol %q is not supported; use rest, soap, ftp or sftp%s", src.Protocol, suggest(src.Protocol, []string{"rest", "soap", "ftp", "sftp"}))
		return
	}
	r := src.REST
	if u, err := url.Parse(r.BaseURL); r.BaseURL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		c.errorf(where(r.At, "baseUrl", r.Pos), "baseUrl %q must be an absolute http:// or https:// URL", r.BaseURL)
	}
	c.retry(r.Retry)
	if r.Pool != nil && r.Pool.MaxConns < 0 {
		c.errorf(r.Pool.Pos, "maxConns must be positive")
	}
	if r.TLS != nil && (r.TLS.CertFile == "") != (r.TLS.KeyFile == "") {
		c.errorf(r.TLS.Pos, "certFile and keyFile go together: give both for a client certificate, or neither")
	}
	c.auth(r.Auth)
	c.staticHeaders(r.Headers, where(r.At, "headers", r.Pos))
	for _, name := range sortedKeys(r.Operations) {
		op := r.Operations[name]
		op.Name = name
		if !identRe.MatchString(name) {
			c.errorf(op.Pos, "operation name %q must be an identifier", name)
		}
		if op.Method != "" && !methods[op.Method] {
			c.errorf(where(op.At, "method", op.Pos), "method %q is not an HTTP method; use GET, POST, PUT, PATCH, DELETE, HEAD or OPTIONS (upper case)", op.Method)
		}
		if op.Path != "" && !strings.HasPrefix(op.Path, "/") {
			c.errorf(where(op.At, "path", op.Pos), "operation path %q must start with /", op.Path)
		}
		for _, p := range PathParams(op.Path) {
			if !identRe.MatchString(p) {
				c.errorf(where(op.At, "path", op.Pos), "path placeholder {%s} must be an identifier", p)
			}
		}
		c.retry(op.Retry)
		c.staticHeaders(op.Headers, where(op.At, "headers", op.Pos))
	}
}

// auth checks how a source authenticates (rest and soap sources).
func (c *checker) auth(a *Auth) {
	if a == nil {
		return
	}
	switch a.Type {
	case "bearer":
		c.secret(a.Pos, "token", a.Token)
	case "basic":
		if a.Username == "" {
			c.errorf(a.Pos, "basic auth needs a username")
		}
		c.secret(a.Pos, "password", a.Password)
	case "header":
		if a.Header == "" {
			c.errorf(a.Pos, "header auth needs the header name in \"header\"")
		}
		c.secret(a.Pos, "value", a.Value)
	case "":
	default:
		c.errorf(a.Pos, "auth type %q is unknown; use bearer, basic or header", a.Type)
	}
}

var digestRe = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// pluginCapabilities are the only capabilities a plugin may be granted.
var pluginCapabilities = map[string]bool{"clock": true, "random": true}

func (c *checker) plugin(pl *Plugin) {
	if pl.Name != "" && !identRe.MatchString(pl.Name) {
		c.errorf(where(pl.At, "name", pl.Pos), "plugin name %q must be an identifier, e.g. mask", pl.Name)
	}
	if pl.Digest != "" && !digestRe.MatchString(pl.Digest) {
		c.errorf(where(pl.At, "digest", pl.Pos), "digest %q must be sha256: and 64 lower-case hex digits (fsb plugin inspect prints it)", pl.Digest)
	}
	for _, cap := range pl.Capabilities {
		if !pluginCapabilities[cap] {
			c.errorf(where(pl.At, "capabilities", pl.Pos), "unknown capability %q: a plugin may be granted clock and random, nothing else", cap)
		}
	}
	if pl.Pool < 0 || pl.Pool > 256 {
		c.errorf(where(pl.At, "pool", pl.Pos), "pool must be between 1 and 256 instances")
	}
	if pl.Config != nil {
		if m, ok := pl.Config.V.(map[string]any); !ok {
			c.errorf(pl.Config.Pos, "config must be a mapping")
		} else {
			c.inlineSecrets(pl.Config, m)
			for _, k := range sortedKeys(pl.Secrets) {
				if _, dup := m[k]; dup && !secretConfigKeys[strings.ToLower(k)] { // else reported above
					c.errorf(pl.Config.Ptrs["/"+k], "config key %q is also a secret: keep it under secrets only", k)
				}
			}
		}
	}
	for _, k := range sortedKeys(pl.Secrets) {
		c.secret(where(pl.At, "secrets", pl.Pos), k, pl.Secrets[k])
	}
}

// secretConfigKeys are configuration keys that hold secrets by their name:
// a document may not give them a value, only secrets: may (read from env or
// a file at load).
var secretConfigKeys = map[string]bool{"key": true, "secret": true, "password": true, "token": true, "apikey": true, "clientsecret": true}

// inlineSecrets refuses a plugin or step configuration that writes a secret.
func (c *checker) inlineSecrets(v *Value, m map[string]any) {
	for _, k := range sortedKeys(m) {
		if secretConfigKeys[strings.ToLower(k)] {
			at, ok := v.Ptrs["/"+k]
			if !ok {
				at = v.Pos
			}
			c.errorf(at, "config key %q holds a secret: declare it in the plugin's secrets ({env: NAME} or {file: path}), not inline", k)
			(*c.errs)[len(*c.errs)-1].Line = "" // the snippet would print the secret
		}
	}
}

// ModulePath resolves a plugin's module path against its file's directory.
func (pl *Plugin) ModulePath() string {
	if filepath.IsAbs(pl.Module) {
		return pl.Module
	}
	return filepath.Join(filepath.Dir(pl.Pos.File), pl.Module)
}

// IsIdempotent reports whether repeating the operation is safe: as
// declared, or by its method (GET, HEAD, OPTIONS, PUT, DELETE).
func (op *Operation) IsIdempotent() bool {
	if op.Idempotent != nil {
		return *op.Idempotent
	}
	switch op.Method {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE":
		return true
	}
	return false
}

// secretHeaders may only be set through an auth block (env or file).
var secretHeaders = map[string]bool{"authorization": true, "proxy-authorization": true, "cookie": true}

func (c *checker) staticHeaders(h map[string]string, at Pos) {
	for _, k := range sortedKeys(h) {
		if secretHeaders[strings.ToLower(k)] {
			c.errorf(at, "header %q may carry a secret: use an auth block reading it from env or a file, not an inline value", k)
		}
	}
}

// transportHeaders are managed by the REST transport (framing, routing,
// tracing); a call may not set them.
var transportHeaders = map[string]bool{
	"host": true, "content-length": true, "transfer-encoding": true, "connection": true, "te": true,
	"trailer": true, "upgrade": true, "keep-alive": true, "proxy-connection": true, "expect": true,
	"content-type": true, "belgov-trace-id": true,
}

// reservedResponseHeaders are set by the gateway; a flow may not.
var reservedResponseHeaders = map[string]bool{
	"content-type": true, "content-length": true, "transfer-encoding": true, "connection": true,
	"belgov-trace-id": true, "belgov-related-trace-id": true, "set-cookie": true, "date": true, "server": true,
}

var headerName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

func (c *checker) secret(at Pos, field string, s *Secret) {
	switch {
	case s == nil:
		c.errorf(at, "missing %q: name an env variable ({env: NAME}) or a file ({file: path})", field)
	case (s.Env == "") == (s.File == ""):
		c.errorf(s.Pos, "a secret names exactly one of env or file")
	}
}

func (c *checker) retry(r *Retry) {
	if r == nil {
		return
	}
	if r.Attempts < 1 || r.Attempts > 10 {
		c.errorf(where(r.At, "attempts", r.Pos), "retry attempts must be between 1 and 10 (it counts the first try)")
	}
	if r.MaxBackoff != 0 && r.MaxBackoff < r.Backoff {
		c.errorf(where(r.At, "maxBackoff", r.Pos), "maxBackoff must not be smaller than backoff")
	}
}

func (c *checker) flow(fl *Flow) {
	if fl.Name != "" && !identRe.MatchString(fl.Name) {
		c.errorf(where(fl.At, "name", fl.Pos), "flow name %q must be an identifier (lowerCamelCase), e.g. enterpriseProfile", fl.Name)
	}
	if fl.Version != "" && !semverRe.MatchString(fl.Version) {
		c.errorf(where(fl.At, "version", fl.Pos), "version %q must be a semantic version such as 1.0.0", fl.Version)
	}
	if fl.Method != "" && !methods[fl.Method] {
		c.errorf(where(fl.At, "method", fl.Pos), "method %q is not an HTTP method (use upper case: GET, POST …)", fl.Method)
	}
	if fl.Path != "" {
		m := belgifPath.FindStringSubmatch(fl.Path)
		switch {
		case m == nil:
			c.errorf(where(fl.At, "path", fl.Pos), "path %q must follow the Belgif form /{apiName}/v{major}/{resources}: lowerCamelCase api name, no trailing slash", fl.Path)
		case semverRe.MatchString(fl.Version) && m[2] != strconv.Itoa(Major(fl.Version)):
			c.errorf(where(fl.At, "path", fl.Pos), "path %q names major version v%s but the flow version is %s", fl.Path, m[2], fl.Version)
		}
		if m != nil && (m[1] == "health" || m[1] == "doc" || m[1] == "refData") {
			c.errorf(where(fl.At, "path", fl.Pos), "path %q uses a reserved Belgif api name", fl.Path)
		}
	}
	if fl.Status != 0 && (fl.Status < 200 || fl.Status > 299) {
		c.errorf(where(fl.At, "status", fl.Pos), "status %d must be a 2xx success status", fl.Status)
	}
	for _, k := range sortedKeys(fl.Headers) {
		switch {
		case !headerName.MatchString(k):
			c.errorf(where(fl.At, "headers", fl.Pos), "%q is not a valid header name", k)
		case reservedResponseHeaders[strings.ToLower(k)]:
			c.errorf(fl.Headers[k].Pos, "header %q is set by the gateway, not by a flow", k)
		}
	}
	ids := map[string]*Step{}
	c.steps(fl, fl.Steps, ids)
	c.catalogue(fl) // catalog.go
}

// steps checks a list of steps; ids collects every step id of the flow.
func (c *checker) steps(fl *Flow, steps []*Step, ids map[string]*Step) {
	for i, st := range steps {
		if i > 0 {
			if prev := steps[i-1]; prev.Fail != nil && prev.When == nil {
				c.errorf(st.Pos, "step %q is unreachable: step %q before it always fails", st.ID, prev.ID)
			}
		}
		c.step(fl, st, ids)
	}
}

func (c *checker) step(fl *Flow, st *Step, ids map[string]*Step) {
	if st.ID != "" {
		if !identRe.MatchString(st.ID) {
			c.errorf(where(st.At, "id", st.Pos), "step id %q must be an identifier (letters, digits, _): expressions read it as steps.%s", st.ID, st.ID)
		}
		if prev, dup := ids[st.ID]; dup {
			c.errorf(where(st.At, "id", st.Pos), "duplicate step id %q in flow %q (first used at %s)", st.ID, fl.Name, prev.Pos)
		} else {
			ids[st.ID] = st
		}
	}
	kinds := []string{}
	if st.Call != "" {
		kinds = append(kinds, "call")
	}
	if st.Parallel != nil {
		kinds = append(kinds, "parallel")
	}
	if st.Steps != nil {
		kinds = append(kinds, "steps")
	}
	if st.Switch != nil {
		kinds = append(kinds, "switch")
	}
	if st.Foreach != nil {
		kinds = append(kinds, "foreach")
	}
	if st.Set != nil {
		kinds = append(kinds, "set")
	}
	if st.Fail != nil {
		kinds = append(kinds, "fail")
	}
	if st.Transform != nil {
		kinds = append(kinds, "transform")
	}
	switch len(kinds) {
	case 0:
		c.errorf(st.Pos, "step %q does nothing: give one of call, parallel, steps, switch, foreach, set, fail or transform", st.ID)
	case 1:
	default:
		c.errorf(st.Pos, "step %q has %s: a step does exactly one thing; nest steps to do more", st.ID, strings.Join(kinds, " and "))
	}
	if st.Default != nil && !st.Optional {
		c.errorf(st.Default.Pos, "default is only used by optional steps: add optional: true")
	}
	if st.Call == "" && (st.With != nil || st.AcceptStatus != nil) {
		c.errorf(st.Pos, "with and acceptStatus belong to call steps")
	}
	if st.Call == "" && st.Subject != nil {
		c.errorf(st.Subject.Pos, "subject belongs to call steps (whom the call consults); a flow's own subject is legal.subject")
	}
	if st.Retry != nil && st.Call == "" {
		c.errorf(st.Retry.Pos, "retry belongs to call steps")
	}
	c.retry(st.Retry)
	for _, s := range st.AcceptStatus {
		if s < 100 || s > 599 {
			c.errorf(where(st.At, "acceptStatus", st.Pos), "acceptStatus %d is not an HTTP status", s)
		}
	}
	if st.Call != "" {
		c.call(st)
	}
	if tr := st.Transform; tr != nil && tr.Plugin != "" && c.set.Plugins[tr.Plugin] == nil {
		c.errorf(where(tr.At, "plugin", tr.Pos), "no plugin named %q%s", tr.Plugin, suggest(tr.Plugin, sortedKeys(c.set.Plugins)))
	}
	if tr := st.Transform; tr != nil && tr.Config != nil {
		if m, ok := tr.Config.V.(map[string]any); !ok {
			c.errorf(tr.Config.Pos, "config must be a mapping")
		} else {
			c.inlineSecrets(tr.Config, m)
		}
	}
	if st.Parallel != nil {
		if len(st.Parallel) < 2 {
			c.errorf(st.Pos, "parallel needs at least two steps")
		}
		for _, b := range st.Parallel {
			c.step(fl, b, ids)
		}
	}
	if st.Steps != nil {
		c.steps(fl, st.Steps, ids)
	}
	if sw := st.Switch; sw != nil {
		for _, cs := range sw.Cases {
			c.steps(fl, cs.Steps, ids)
		}
		c.steps(fl, sw.Default, ids)
	}
	if fe := st.Foreach; fe != nil {
		if fe.Concurrency < 0 || fe.Concurrency > 64 {
			c.errorf(where(fe.At, "concurrency", fe.Pos), "concurrency must be between 1 and 64")
		}
		if fe.MaxItems < 0 || fe.MaxItems > 100000 {
			c.errorf(where(fe.At, "maxItems", fe.Pos), "maxItems must be between 1 and 100000")
		}
		c.steps(fl, fe.Steps, ids)
	}
	if f := st.Fail; f != nil {
		_, known := ProblemTypes[f.Type]
		switch {
		case f.Type == "":
		case !known && !strings.HasPrefix(f.Type, "urn:"):
			c.errorf(where(f.At, "type", f.Pos), "problem type %q is neither a Belgif type (e.g. resourceNotFound, badRequest) nor a urn:problem-type:… URN", f.Type)
		case !known && f.Status == 0:
			c.errorf(where(f.At, "type", f.Pos), "a custom problem type needs a status")
		}
		if f.Status != 0 && (f.Status < 400 || f.Status > 599) {
			c.errorf(where(f.At, "status", f.Pos), "fail status %d must be 4xx or 5xx", f.Status)
		}
	}
}

func (c *checker) call(st *Step) {
	srcName, opName, ok := strings.Cut(st.Call, ".")
	if !ok {
		c.errorf(where(st.At, "call", st.Pos), "call %q must name source.operation", st.Call)
		return
	}
	src := c.set.Sources[srcName]
	if src == nil {
		c.errorf(where(st.At, "call", st.Pos), "call %q: no source named %q%s", st.Call, srcName, suggest(srcName, sortedKeys(c.set.Sources)))
		return
	}
	if src.SOAP != nil {
		c.soapCall(st, src, opName) // soap.go
		return
	}
	if src.IsFile() {
		c.fileCall(st, src) // file.go
		return
	}
	if src.REST == nil {
		return
	}
	op := src.REST.Operations[opName]
	if op == nil {
		c.errorf(where(st.At, "call", st.Pos), "call %q: source %q has no operation %q%s", st.Call, srcName, opName, suggest(opName, sortedKeys(src.REST.Operations)))
		return
	}
	given := map[string]*Expr{}
	at := st.Pos
	if st.With != nil {
		given, at = st.With.Path, st.With.Pos
	}
	want := map[string]bool{}
	for _, p := range PathParams(op.Path) {
		want[p] = true
		if given[p] == nil {
			c.errorf(at, "call %q needs path parameter %q (with: path: %s: <expression>)", st.Call, p, p)
		}
	}
	for _, p := range sortedKeys(given) {
		if !want[p] {
			c.errorf(given[p].Pos, "operation %q has no path parameter %q (its path is %s)", st.Call, p, op.Path)
		}
	}
	if st.With != nil {
		for _, k := range sortedKeys(st.With.Headers) {
			lk := strings.ToLower(k)
			switch {
			case !headerName.MatchString(k):
				c.errorf(st.With.Headers[k].Pos, "%q is not a valid header name", k)
			case secretHeaders[lk]:
				c.errorf(st.With.Headers[k].Pos, "header %q may carry a credential: the source's auth block sets it, a flow may not", k)
			case transportHeaders[lk]:
				c.errorf(st.With.Headers[k].Pos, "header %q is set by the transport, not by a flow", k)
			}
		}
	}
	if st.Retry != nil && !op.IsIdempotent() {
		c.errorf(st.Retry.Pos, "operation %q uses %s, which is not idempotent: a retry could repeat its effect; if repeating it is safe, mark the operation idempotent: true", st.Call, op.Method)
	}
	if st.With != nil && st.With.Body != nil && (op.Method == "GET" || op.Method == "HEAD") {
		c.errorf(st.With.Body.Pos, "operation %q uses %s, which sends no body", st.Call, op.Method)
	}
}

func (c *checker) test(t *Test) {
	fl := c.set.Flows[t.Flow]
	if t.Flow != "" && fl == nil {
		c.errorf(where(t.At, "flow", t.Pos), "test %q: no flow named %q%s", t.Name, t.Flow, suggest(t.Flow, sortedKeys(c.set.Flows)))
	}
	for _, m := range t.Mocks {
		srcName, opName, _ := strings.Cut(m.Call, ".")
		src := c.set.Sources[srcName]
		switch {
		case m.Call == "":
		case src == nil:
			c.errorf(where(m.At, "call", m.Pos), "mock %q: no source named %q", m.Call, srcName)
		case src.REST != nil && src.REST.Operations[opName] == nil:
			c.errorf(where(m.At, "call", m.Pos), "mock %q: source %q has no operation %q", m.Call, srcName, opName)
		}
		if src != nil {
			c.soapMock(m, src, opName) // soap.go
		}
		if src != nil && src.IsFile() && m.Call != "" {
			c.fileMock(m, src, opName) // file.go
		}
		switch m.Error {
		case "", "timeout", "unavailable":
		default:
			c.errorf(where(m.At, "error", m.Pos), "mock error %q is unknown; use timeout or unavailable", m.Error)
		}
		if m.Error != "" && (m.Status != 0 || m.Body != nil || m.RawBody != "") {
			c.errorf(m.Pos, "a mock either fails (error) or answers (status, body), not both")
		}
		if m.Body != nil && m.RawBody != "" {
			c.errorf(where(m.At, "rawBody", m.Pos), "a mock has body or rawBody, not both")
		}
	}
	if t.Expect.Status == 0 && t.Expect.Problem == nil {
		c.errorf(t.Expect.Pos, "expect needs a status or a problem")
	}
	if t.Expect.Problem != nil && t.Expect.Body != nil {
		c.errorf(t.Expect.Pos, "expect either a body or a problem, not both")
	}
}

// where returns the position of key's value, or fallback.
func where(at map[string]Pos, key string, fallback Pos) Pos {
	if p, ok := at[key]; ok {
		return p
	}
	return fallback
}

// suggest returns a hint naming the closest known name, or listing the
// known names when there are few and none is close.
func suggest(name string, known []string) string {
	if best := Closest(name, known); best != "" {
		return "; did you mean " + strconv.Quote(best) + "?"
	}
	if len(known) > 0 && len(known) <= 8 {
		return " (known: " + strings.Join(known, ", ") + ")"
	}
	return ""
}

// Closest returns the known name nearest to name (at most a few edits
// away, ignoring case), or "" when none is close. Used for "did you mean".
func Closest(name string, known []string) string {
	best, bestD := "", min(3, max(1, len(name)/2)+1)
	for _, k := range known {
		if d := distance(strings.ToLower(name), strings.ToLower(k)); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// distance is the Damerau–Levenshtein (optimal string alignment) distance.
func distance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
