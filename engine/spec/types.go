package spec

// Document kinds.
const (
	KindSource = "Source"
	KindFlow   = "Flow"
	KindTest   = "Test"
	KindPlugin = "Plugin"
)

// header is what every document starts with; the rest depends on kind.
type header struct {
	Kind string `yaml:"kind"`
}

// Source describes one authentic data source and how to reach it.
type Source struct {
	At          map[string]Pos // position of each key's value
	Pos         Pos
	Kind        string      `yaml:"kind"`
	Name        string      `yaml:"name,required"`
	Title       string      `yaml:"title"`
	Description string      `yaml:"description"`
	Owner       string      `yaml:"owner"`
	Protocol    string      `yaml:"protocol,required"`
	REST        *RESTSource `yaml:"rest"`
	SOAP        *SOAPSource `yaml:"soap"` // see soap.go
	// File sources (protocol ftp or sftp, file.go): the transport block,
	// then what the engine does with the files.
	FTP         *FTPSource                `yaml:"ftp"`
	SFTP        *SFTPSource               `yaml:"sftp"`
	MaxFileSize ByteSize                  `yaml:"maxFileSize"` // default 16MiB
	Timeout     Duration                  `yaml:"timeout"`     // one call, download included (default 30s)
	Cache       *FileCache                `yaml:"cache"`
	Operations  map[string]*FileOperation `yaml:"operations"`
}

// RESTSource is the transport configuration of a source of protocol rest.
type RESTSource struct {
	At               map[string]Pos // position of each key's value
	Pos              Pos
	BaseURL          string                `yaml:"baseUrl,required"`
	Timeout          Duration              `yaml:"timeout"`
	Retry            *Retry                `yaml:"retry"`
	MaxResponseBytes ByteSize              `yaml:"maxResponseBytes"`
	Pool             *Pool                 `yaml:"pool"`
	TLS              *TLS                  `yaml:"tls"`
	Auth             *Auth                 `yaml:"auth"`
	Headers          map[string]string     `yaml:"headers"`
	HealthPath       string                `yaml:"healthPath"`
	Operations       map[string]*Operation `yaml:"operations,required"`
}

// Operation is one named call a REST source offers.
type Operation struct {
	At               map[string]Pos // position of each key's value
	Pos              Pos
	Name             string            `yaml:"-"`
	Method           string            `yaml:"method,required"`
	Path             string            `yaml:"path,required"`
	Query            map[string]string `yaml:"query"`
	Headers          map[string]string `yaml:"headers"`
	Timeout          Duration          `yaml:"timeout"`
	Retry            *Retry            `yaml:"retry"`
	Idempotent       *bool             `yaml:"idempotent"`
	MaxResponseBytes ByteSize          `yaml:"maxResponseBytes"`
}

// Retry is a retry policy: exponential backoff with full jitter.
type Retry struct {
	At         map[string]Pos // position of each key's value
	Pos        Pos
	Attempts   int      `yaml:"attempts,required"`
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"maxBackoff"`
	OnStatus   []int    `yaml:"onStatus"`
}

// Pool bounds the connections kept to one source.
type Pool struct {
	Pos         Pos
	MaxConns    int      `yaml:"maxConns"`
	IdleTimeout Duration `yaml:"idleTimeout"`
}

// TLS configures the connection to an https source.
type TLS struct {
	Pos        Pos
	CAFile     string `yaml:"caFile"`
	CertFile   string `yaml:"certFile"`
	KeyFile    string `yaml:"keyFile"`
	ServerName string `yaml:"serverName"`
}

// Auth is how OpenFSB authenticates to a source. Credentials are Secrets:
// they come from the environment or a file, never from the config itself.
type Auth struct {
	At       map[string]Pos // position of each key's value
	Pos      Pos
	Type     string  `yaml:"type,required"` // bearer | basic | header
	Token    *Secret `yaml:"token"`
	Username string  `yaml:"username"`
	Password *Secret `yaml:"password"`
	Header   string  `yaml:"header"`
	Value    *Secret `yaml:"value"`
}

// Secret names where a credential is read from at start-up.
type Secret struct {
	Pos  Pos
	Env  string `yaml:"env"`
	File string `yaml:"file"`
}

// Plugin declares a WebAssembly module that transform steps run in the
// sandbox (see sdk/ABI.md), pinned by its SHA-256 digest.
type Plugin struct {
	At           map[string]Pos // position of each key's value
	Pos          Pos
	Kind         string        `yaml:"kind"`
	Name         string        `yaml:"name,required"`
	Description  string        `yaml:"description"`
	Module       string        `yaml:"module,required"` // .wasm path, relative to this file's directory
	Digest       string        `yaml:"digest,required"` // sha256:<64 hex digits>
	Trusted      bool          `yaml:"trusted"`         // operator-trusted: runs without timeout enforcement
	Limits       *PluginLimits `yaml:"limits"`
	Capabilities []string      `yaml:"capabilities"` // clock, random
	Pool         int           `yaml:"pool"`         // instances kept, default 4
	Config       *Value        `yaml:"config"`       // default configuration, a mapping
	// Secrets are configuration keys whose values are read from the
	// environment or a file when the plugin loads, never written in a
	// document: secrets: {key: {env: MASK_KEY}}.
	Secrets map[string]*Secret `yaml:"secrets"`
}

// PluginLimits bound what one call of a plugin may use.
type PluginLimits struct {
	At        map[string]Pos
	Pos       Pos
	MaxMemory ByteSize `yaml:"maxMemory"`
	Timeout   Duration `yaml:"timeout"`
	MaxInput  ByteSize `yaml:"maxInput"`
	MaxOutput ByteSize `yaml:"maxOutput"`
}

// Transform runs a plugin operation on the JSON value of an expression.
type Transform struct {
	At     map[string]Pos
	Pos    Pos
	Plugin string `yaml:"plugin,required"`
	Op     string `yaml:"op"` // default transform
	Input  *Expr  `yaml:"input,required"`
	Config *Value `yaml:"config"` // merged over the plugin's config
}

// Flow is a composite service: a route, an input schema, steps and an output.
type Flow struct {
	At          map[string]Pos // position of each key's value
	Pos         Pos
	Kind        string           `yaml:"kind"`
	Name        string           `yaml:"name,required"`
	Version     string           `yaml:"version,required"`
	Method      string           `yaml:"method,required"`
	Path        string           `yaml:"path,required"`
	Catalog     *Catalog         `yaml:"catalog"`
	Legal       *Legal           `yaml:"legal"`
	Input       *Input           `yaml:"input"`
	Timeout     Duration         `yaml:"timeout"`
	Steps       []*Step          `yaml:"steps"`
	Output      *Output          `yaml:"output,required"`
	Headers     map[string]*Expr `yaml:"headers"` // response headers, e.g. Location
	Status      int              `yaml:"status"`
	MaxBodySize ByteSize         `yaml:"maxBodySize"`

	// OutputSchema is the JSON Schema of the success body, for the
	// catalogue's OpenAPI document and checked against the flow's tests
	// (catalog.go).
	OutputSchema *Value `yaml:"outputSchema"`
}

// Catalog and Legal, the catalogue and privacy metadata of a flow, are in catalog.go.

// Input holds JSON Schemas for the request's body, query and path parameters.
type Input struct {
	At    map[string]Pos // position of each key's value
	Pos   Pos
	Body  *Value `yaml:"body"`
	Query *Value `yaml:"query"`
	Path  *Value `yaml:"path"`
}

// Step is one step of a flow. Exactly one of Call, Parallel, Steps, Switch,
// Foreach, Set or Fail says what it does; the rest are common options.
type Step struct {
	At       map[string]Pos // position of each key's value
	Pos      Pos
	ID       string   `yaml:"id,required"`
	When     *Expr    `yaml:"when"`
	Timeout  Duration `yaml:"timeout"`
	Retry    *Retry   `yaml:"retry"`
	Optional bool     `yaml:"optional"`
	Default  *Value   `yaml:"default"`

	Call         string    `yaml:"call"`
	With         *CallArgs `yaml:"with"`
	AcceptStatus []int     `yaml:"acceptStatus"`
	// Subject names the data subject this call consults when it is not the
	// flow's legal.subject (e.g. a director looked up for an enterprise):
	// the audit trail records it with the call, pseudonymised, and the
	// citizen view finds the consultation under it.
	Subject *Expr `yaml:"subject"`

	Parallel  []*Step    `yaml:"parallel"`
	Steps     []*Step    `yaml:"steps"`
	Switch    *Switch    `yaml:"switch"`
	Foreach   *Foreach   `yaml:"foreach"`
	Set       *Output    `yaml:"set"`
	Fail      *Fail      `yaml:"fail"`
	Transform *Transform `yaml:"transform"`
}

// CallArgs map the request of a call step, each value an expression.
type CallArgs struct {
	At      map[string]Pos // position of each key's value
	Pos     Pos
	Path    map[string]*Expr `yaml:"path"`
	Query   map[string]*Expr `yaml:"query"`
	Headers map[string]*Expr `yaml:"headers"`
	Body    *Output          `yaml:"body"`
}

// Switch runs the steps of the first case whose condition holds.
type Switch struct {
	Pos     Pos
	Cases   []*Case `yaml:"cases,required"`
	Default []*Step `yaml:"default"`
}

// Case is one branch of a switch.
type Case struct {
	Pos   Pos
	When  *Expr   `yaml:"when,required"`
	Steps []*Step `yaml:"steps,required"`
}

// Foreach runs its steps once per item of an array, at most Concurrency at a
// time, and collects Output (default: the last step's body) per item.
type Foreach struct {
	At          map[string]Pos // position of each key's value
	Pos         Pos
	Items       *Expr   `yaml:"items,required"`
	Concurrency int     `yaml:"concurrency"`
	MaxItems    int     `yaml:"maxItems"` // default 1000
	Steps       []*Step `yaml:"steps,required"`
	Output      *Output `yaml:"output"`
}

// Fail ends the flow with a problem.
type Fail struct {
	At     map[string]Pos // position of each key's value
	Pos    Pos
	Type   string `yaml:"type,required"`
	Status int    `yaml:"status"`
	Title  string `yaml:"title"`
	Detail *Expr  `yaml:"detail"`
}

// Test is a flow test: a request, mocked source responses, an expectation.
type Test struct {
	At      map[string]Pos // position of each key's value
	Pos     Pos
	Kind    string      `yaml:"kind"`
	Name    string      `yaml:"name,required"`
	Flow    string      `yaml:"flow,required"`
	Request TestRequest `yaml:"request,required"`
	Mocks   []*Mock     `yaml:"mocks"`
	Expect  Expect      `yaml:"expect,required"`
}

// TestRequest is the consumer request a test sends.
type TestRequest struct {
	Pos     Pos
	Path    string            `yaml:"path"`
	Query   map[string]string `yaml:"query"`
	Headers map[string]string `yaml:"headers"`
	Body    *Value            `yaml:"body"`
	RawBody string            `yaml:"rawBody"`
}

// Mock answers calls to one source operation during a test.
type Mock struct {
	At      map[string]Pos // position of each key's value
	Pos     Pos
	Call    string            `yaml:"call,required"` // source.operation
	Match   *MockMatch        `yaml:"match"`
	Status  int               `yaml:"status"`
	Headers map[string]string `yaml:"headers"`
	Body    *Value            `yaml:"body"`
	RawBody string            `yaml:"rawBody"` // sent as is, e.g. to test malformed JSON
	Error   string            `yaml:"error"`   // timeout | unavailable
	Delay   Duration          `yaml:"delay"`
	Fault   *MockFault        `yaml:"fault"` // a SOAP Fault (soap.go)
}

// MockMatch narrows a mock to calls with these rendered parameters.
type MockMatch struct {
	Pos   Pos
	Path  map[string]string `yaml:"path"`
	Query map[string]string `yaml:"query"`
	Body  *Value            `yaml:"body"`
}

// Expect is what a test wants back.
type Expect struct {
	Pos     Pos
	Status  int               `yaml:"status"`
	Body    *Value            `yaml:"body"`
	Headers map[string]string `yaml:"headers"`
	Problem *ExpectProblem    `yaml:"problem"`
	Calls   map[string]int    `yaml:"calls"`
}

// ExpectProblem checks a problem+json answer.
type ExpectProblem struct {
	Pos    Pos
	Type   string   `yaml:"type,required"`
	Step   string   `yaml:"step"`
	Issues []string `yaml:"issues"`
}
