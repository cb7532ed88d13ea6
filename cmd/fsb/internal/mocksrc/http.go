package mocksrc

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Belgif tracing headers.
const (
	headerTraceID        = "BelGov-Trace-Id"
	headerRelatedTraceID = "BelGov-Related-Trace-Id"
)

// maxTraceIDLen is the Belgif limit on a BelGov-Trace-Id value.
const maxTraceIDLen = 36

// withTracing gives every response its own fresh BelGov-Trace-Id, echoes the
// caller's in BelGov-Related-Trace-Id, and logs the request at Debug.
func withTracing(source string, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		began := time.Now()
		own := newTraceID()
		related := r.Header.Get(headerTraceID)
		h := w.Header()
		h.Set(headerTraceID, own)
		if validTraceID(related) {
			h.Set(headerRelatedTraceID, related)
		} else {
			// Not echoed: it could be anything the caller sent.
			related = ""
		}
		// Registers answer with personal data: no caching anywhere.
		h.Set("Cache-Control", "no-store")

		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)

		log.LogAttrs(r.Context(), slog.LevelDebug, "mock source request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("traceId", related),
			slog.String("responseTraceId", own),
			slog.Int("status", rec.status),
			slog.Duration("duration", time.Since(began)),
		)
	})
}

// validTraceID accepts 1 to 36 visible ASCII characters, the Belgif limit.
func validTraceID(s string) bool {
	if s == "" || len(s) > maxTraceIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// newTraceID returns a random (version 4) UUID: 36 characters.
func newTraceID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails: crypto/rand panics rather than return an error
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var out [36]byte
	hex.Encode(out[0:8], b[0:4])
	out[8] = '-'
	hex.Encode(out[9:13], b[4:6])
	out[13] = '-'
	hex.Encode(out[14:18], b[6:8])
	out[18] = '-'
	hex.Encode(out[19:23], b[8:10])
	out[23] = '-'
	hex.Encode(out[24:], b[10:])
	return string(out[:])
}

// statusRecorder remembers the status code for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wroteHeader {
		s.status, s.wroteHeader = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wroteHeader = true
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the real writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// writeJSON writes v as the response body with the given status.
func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only the package's own types are written; this cannot happen.
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

func writeOK(w http.ResponseWriter, v any) {
	writeJSON(w, http.StatusOK, "application/json", v)
}

// Belgif problem types (https://www.belgif.be/specification/rest/api-guide/).
const (
	problemBadRequest         = "urn:problem-type:belgif:badRequest"
	problemResourceNotFound   = "urn:problem-type:belgif:resourceNotFound"
	problemPayloadTooLarge    = "urn:problem-type:belgif:payloadTooLarge"
	problemServiceUnavailable = "urn:problem-type:belgif:serviceUnavailable"

	issueSchemaViolation = "urn:problem-type:belgif:input-validation:schemaViolation"
	issueUnknownInput    = "urn:problem-type:belgif:input-validation:unknownInput"
	issueInvalidInput    = "urn:problem-type:belgif:input-validation:invalidInput"
	issueRequiredInput   = "urn:problem-type:belgif:input-validation:requiredInput"
)

// problem is an RFC 9457 problem detail, with the Belgif issues extension.
type problem struct {
	Type     string  `json:"type"`
	Title    string  `json:"title"`
	Status   int     `json:"status"`
	Detail   string  `json:"detail,omitempty"`
	Instance string  `json:"instance,omitempty"`
	Issues   []issue `json:"issues,omitempty"`
}

// issue is one input-validation finding of a badRequest problem. Value is
// left out for sensitive inputs such as an SSIN.
type issue struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	In     string `json:"in"`
	Name   string `json:"name,omitempty"`
	Value  string `json:"value,omitempty"`
	Detail string `json:"detail,omitempty"`
}

var issueTitles = map[string]string{
	issueSchemaViolation: "Input isn't valid with respect to schema",
	issueUnknownInput:    "Unknown input",
	issueInvalidInput:    "Invalid input",
	issueRequiredInput:   "Missing required input",
}

func newIssue(typ, in, name, value, detail string) issue {
	return issue{Type: typ, Title: issueTitles[typ], In: in, Name: name, Value: value, Detail: detail}
}

// writeProblem answers with an application/problem+json body. Its instance
// is the response's own trace id, so a problem seen by a consumer can be
// found in this source's log.
func writeProblem(w http.ResponseWriter, p problem) {
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	if id := w.Header().Get(headerTraceID); id != "" {
		p.Instance = "urn:uuid:" + id
	}
	writeJSON(w, p.Status, "application/problem+json", p)
}

func badRequest(w http.ResponseWriter, issues ...issue) {
	writeProblem(w, problem{
		Type:   problemBadRequest,
		Status: http.StatusBadRequest,
		Detail: "The input message is incorrect",
		Issues: issues,
	})
}

func notFound(w http.ResponseWriter, detail string) {
	writeProblem(w, problem{
		Type:   problemResourceNotFound,
		Title:  "Resource Not Found",
		Status: http.StatusNotFound,
		Detail: detail,
	})
}

// unknownQuery reports every query parameter not in allowed, as Belgif asks
// providers to reject unknown input rather than ignore it.
func unknownQuery(r *http.Request, allowed ...string) []issue {
	var issues []issue
	for name, values := range r.URL.Query() {
		if !slices.Contains(allowed, name) {
			issues = append(issues, newIssue(issueUnknownInput, "query", name, strings.Join(values, ","),
				"unknown query parameter"))
		}
	}
	slices.SortFunc(issues, func(a, b issue) int { return strings.Compare(a.Name, b.Name) })
	return issues
}

// route registers handler for method and pattern, and a problem+json 405
// for the other methods on the same path.
func route(mux *http.ServeMux, method, pattern string, handler http.HandlerFunc) {
	mux.HandleFunc(method+" "+pattern, handler)
	mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", method)
		writeProblem(w, problem{
			Type:   "about:blank",
			Status: http.StatusMethodNotAllowed,
			Detail: "Use " + method + " on this resource",
		})
	})
}

// newMux returns a mux with /health and a problem+json 404 for every path
// the source does not serve.
func newMux() *http.ServeMux {
	mux := http.NewServeMux()
	route(mux, http.MethodGet, "/health", func(w http.ResponseWriter, r *http.Request) {
		writeOK(w, map[string]string{"status": "UP"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		notFound(w, "No resource at this path")
	})
	return mux
}
