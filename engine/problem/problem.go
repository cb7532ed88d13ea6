// Package problem is the wire format of every error OpenFSB answers: RFC 9457
// application/problem+json with Belgif problem types. It owns the types and
// their statuses, and must not know where an error came from: callers say
// what to tell the consumer, never internals (no stack traces, hosts, paths).
package problem

import (
	"encoding/json"
	"net/http"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// Belgif problem type prefix and the issue type prefix for input validation.
const (
	BelgifPrefix = "urn:problem-type:belgif:"
	IssuePrefix  = "urn:problem-type:belgif:input-validation:"
	// OpenFSBPrefix names the types Belgif does not define.
	OpenFSBPrefix = "urn:problem-type:openfsb:"
)

// Problem is one problem+json document.
type Problem struct {
	Type     string  `json:"type"`
	Title    string  `json:"title"`
	Status   int     `json:"status"`
	Detail   string  `json:"detail,omitempty"`
	Instance string  `json:"instance,omitempty"`
	Step     string  `json:"step,omitempty"` // the flow step that failed
	Issues   []Issue `json:"issues,omitempty"`
	// RetryAfter, in seconds, becomes a Retry-After header when > 0.
	RetryAfter int `json:"-"`
}

// Issue is one input validation issue of a badRequest problem.
type Issue struct {
	Type   string `json:"type"`
	Title  string `json:"title,omitempty"`
	In     string `json:"in"` // body, query, path, header
	Name   string `json:"name"`
	Value  any    `json:"value,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Issue types.
const (
	SchemaViolation = "schemaViolation"
	UnknownInput    = "unknownInput"
	InvalidInput    = "invalidInput"
	RequiredInput   = "requiredInput"
)

var titles = map[string]string{
	"badRequest":            "Bad Request",
	"noAccessToken":         "No Access Token",
	"invalidAccessToken":    "Invalid Access Token",
	"expiredAccessToken":    "Expired Access Token",
	"missingScope":          "Missing Scope",
	"missingPermission":     "Missing Permission",
	"resourceNotFound":      "Resource Not Found",
	"payloadTooLarge":       "Payload Too Large",
	"unsupportedMediaType":  "Unsupported Media Type",
	"notAcceptable":         "Not Acceptable",
	"conflict":              "Conflict",
	"tooManyRequests":       "Too Many Requests",
	"tooManyFailedRequests": "Too Many Failed Requests",
	"internalServerError":   "Internal Server Error",
	"badGateway":            "Bad Gateway",
	"serviceUnavailable":    "Service Unavailable",
}

// New builds a problem of a Belgif type name (e.g. "badGateway") or of a
// full type URN. The title is the Belgif one when known, else the HTTP text.
func New(typ string, status int, detail string) *Problem {
	p := &Problem{Type: typ, Status: status, Detail: detail}
	if t, ok := titles[typ]; ok {
		p.Type, p.Title = BelgifPrefix+typ, t
	} else {
		p.Title = http.StatusText(status)
	}
	return p
}

// Constructors for the problems the engine itself raises.
func BadRequest(detail string, issues ...Issue) *Problem {
	p := New("badRequest", 400, detail)
	p.Issues = issues
	return p
}
func NotFound(detail string) *Problem    { return New("resourceNotFound", 404, detail) }
func TooLarge(detail string) *Problem    { return New("payloadTooLarge", 413, detail) }
func Internal(detail string) *Problem    { return New("internalServerError", 500, detail) }
func BadGateway(detail string) *Problem  { return New("badGateway", 502, detail) }
func Unavailable(detail string) *Problem { return New("serviceUnavailable", 503, detail) }
func UnsupportedMedia(detail string) *Problem {
	return New("unsupportedMediaType", 415, detail)
}

// GatewayTimeout is raised when a step or the whole flow runs out of time;
// Belgif defines no type for it, so it lives in OpenFSB's namespace.
func GatewayTimeout(detail string) *Problem {
	return &Problem{Type: OpenFSBPrefix + "gatewayTimeout", Title: "Gateway Timeout", Status: 504, Detail: detail}
}

// NewIssue builds an input validation issue of the given issue type.
func NewIssue(typ, in, name string, value any, detail string) Issue {
	return Issue{Type: IssuePrefix + typ, In: in, Name: name, Value: value, Detail: detail}
}

// JSON renders the problem document.
func (p *Problem) JSON() []byte {
	b, err := json.Marshal(p)
	if err != nil { // only an unencodable issue value can do this: drop the values, keep the issues
		for i := range p.Issues {
			p.Issues[i].Value = nil
		}
		b, _ = json.Marshal(p)
	}
	return b
}

func (p *Problem) Error() string { return p.Type + ": " + p.Detail }
