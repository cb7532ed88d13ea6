package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"
)

// Version is the record format version this package writes.
const Version = 2

// Kind says which moment of a consumer call a record captures.
type Kind string

// The record kinds.
const (
	// KindRequest is an allowed call, written before any source is called.
	KindRequest Kind = "request"
	// KindRefused is a refused call; it is the call's only record.
	KindRefused Kind = "refused"
	// KindOutcome is what was answered, written before the answer leaves.
	KindOutcome Kind = "outcome"
)

// Record is one audit event in the current in-memory model. Records of
// every stored version decode into it (see Decode); the stored bytes are
// never re-encoded, so the chain stays valid whatever this struct becomes.
type Record struct {
	V    int       `json:"v"`
	Seq  uint64    `json:"seq"`
	Time time.Time `json:"time"` // when the writer recorded it (monotonic with Seq)
	Kind Kind      `json:"kind"`
	// Call links the records of one consumer call (random, 32 hex chars).
	Call string `json:"call"`
	// Request is, in an outcome record, the seq of the call's request record.
	Request uint64 `json:"request,omitempty"`

	Organisation   string `json:"org,omitempty"`
	Application    string `json:"app,omitempty"`
	Credential     string `json:"cred,omitempty"`
	ClientIP       string `json:"clientIp,omitempty"`
	EndUser        string `json:"endUser,omitempty"`
	Purpose        string `json:"purpose,omitempty"`
	Grant          string `json:"grant,omitempty"`
	LegalBasis     string `json:"legalBasis,omitempty"`
	Service        string `json:"service,omitempty"`
	ServiceVersion string `json:"serviceVersion,omitempty"`
	// Environment is "test" for a call served on the test endpoints
	// (version 2 on; absent: production).
	Environment string `json:"env,omitempty"`
	// Subject is the data subject's keyed pseudonym, "hmac-sha256:<keyID>:<hex>".
	Subject string `json:"subject,omitempty"`
	// SubjectClear is the identifier in clear, only when the service's
	// policy says so.
	SubjectClear string `json:"subjectClear,omitempty"`
	TraceIn      string `json:"traceIn,omitempty"`  // the consumer's BelGov-Trace-Id
	TraceOut     string `json:"traceOut,omitempty"` // ours, on the response

	Decision *Decision   `json:"decision,omitempty"` // request and refused records
	Status   int         `json:"status,omitempty"`   // refused and outcome records
	Problem  string      `json:"problem,omitempty"`  // problem type of an error answer
	Digest   string      `json:"digest,omitempty"`   // of the response body, "sha256:<hex>"
	Released []string    `json:"released,omitempty"` // response fields released by the grant
	Sources  []SourceRec `json:"sources,omitempty"`

	RequestBody  *SealedBody `json:"requestBody,omitempty"`
	ResponseBody *SealedBody `json:"responseBody,omitempty"`
}

// Decision is the access decision of a call.
type Decision struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
}

// SourceRec is one call to a source, as recorded.
type SourceRec struct {
	Source      string        `json:"source"`
	Operation   string        `json:"operation,omitempty"`
	TraceID     string        `json:"traceId,omitempty"`     // the fresh id sent to the source
	SourceTrace string        `json:"sourceTrace,omitempty"` // the id the source answered with
	Status      int           `json:"status,omitempty"`
	Latency     time.Duration `json:"latency"`
	Bytes       int64         `json:"bytes,omitempty"`
	Attempts    int           `json:"attempts,omitempty"`
	Digest      string        `json:"digest,omitempty"`
	Error       string        `json:"error,omitempty"`
	// Subject is whom the call consulted when it is not the record's own
	// subject, pseudonymised like Record.Subject (version 2 on).
	Subject      string `json:"subject,omitempty"`
	SubjectClear string `json:"subjectClear,omitempty"`
}

// Errors of decoding.
var (
	ErrUnknownVersion = errors.New("audit: unknown record version")
	ErrBadRecord      = errors.New("audit: malformed record")
)

// Digest returns the digest notation records use: "sha256:" + hex.
func Digest(b []byte) string {
	d := sha256.Sum256(b)
	var out [7 + 2*sha256.Size]byte
	copy(out[:], "sha256:")
	hex.Encode(out[7:], d[:])
	return string(out[:])
}

// timeLayout is fixed-width UTC so that records sort and compare as text.
const timeLayout = "2006-01-02T15:04:05.000000000Z"

// ---- version 1 on disk ----
//
// Frame rule for every version: a record starts with {"v":N,"seq":S,"time":"T",
// in that order, then the version's own fields. Verify and the time search
// read only that frame; Decode picks the decoder by N.

// payloadV2 is the v2 record after the frame, frozen: never change a field
// here. A new field or meaning means payloadV3 and a case in Decode.
// Version 1 is version 2 without env, sources[].subject and subjectClear: every
// v1 record decodes with this struct exactly as with v1's own (frozen in
// record_v1_test.go, which checks it).
type payloadV2 struct {
	Kind           Kind        `json:"kind"`
	Call           string      `json:"call"`
	Request        uint64      `json:"request,omitempty"`
	Organisation   string      `json:"org,omitempty"`
	Application    string      `json:"app,omitempty"`
	Credential     string      `json:"cred,omitempty"`
	ClientIP       string      `json:"clientIp,omitempty"`
	EndUser        string      `json:"endUser,omitempty"`
	Purpose        string      `json:"purpose,omitempty"`
	Grant          string      `json:"grant,omitempty"`
	LegalBasis     string      `json:"legalBasis,omitempty"`
	Service        string      `json:"service,omitempty"`
	ServiceVersion string      `json:"serviceVersion,omitempty"`
	Environment    string      `json:"env,omitempty"` // v2
	Subject        string      `json:"subject,omitempty"`
	SubjectClear   string      `json:"subjectClear,omitempty"`
	TraceIn        string      `json:"traceIn,omitempty"`
	TraceOut       string      `json:"traceOut,omitempty"`
	Decision       *decisionV2 `json:"decision,omitempty"`
	Status         int         `json:"status,omitempty"`
	Problem        string      `json:"problem,omitempty"`
	Digest         string      `json:"digest,omitempty"`
	Released       []string    `json:"released,omitempty"`
	Sources        []sourceV2  `json:"sources,omitempty"`
	RequestBody    *sealedV2   `json:"requestBody,omitempty"`
	ResponseBody   *sealedV2   `json:"responseBody,omitempty"`
}

type decisionV2 struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason,omitempty"`
}

type sourceV2 struct {
	Source       string `json:"source"`
	Operation    string `json:"operation,omitempty"`
	TraceID      string `json:"traceId,omitempty"`
	SourceTrace  string `json:"sourceTrace,omitempty"`
	Status       int    `json:"status,omitempty"`
	LatencyUs    int64  `json:"latencyUs"`
	Bytes        int64  `json:"bytes,omitempty"`
	Attempts     int    `json:"attempts,omitempty"`
	Digest       string `json:"digest,omitempty"`
	Error        string `json:"error,omitempty"`
	Subject      string `json:"subject,omitempty"`      // v2
	SubjectClear string `json:"subjectClear,omitempty"` // v2
}

type sealedV2 struct {
	Alg   string `json:"alg"`
	KeyID string `json:"kid"`
	Nonce []byte `json:"nonce"`
	Data  []byte `json:"data"`
}

type recordV2 struct {
	V    int    `json:"v"`
	Seq  uint64 `json:"seq"`
	Time string `json:"time"`
	payloadV2
}

func (p *payloadV2) from(r *Record) {
	*p = payloadV2{
		Kind: r.Kind, Call: r.Call, Request: r.Request,
		Organisation: r.Organisation, Application: r.Application, Credential: r.Credential,
		ClientIP: r.ClientIP, EndUser: r.EndUser, Purpose: r.Purpose, Grant: r.Grant,
		LegalBasis: r.LegalBasis, Service: r.Service, ServiceVersion: r.ServiceVersion, Environment: r.Environment,
		Subject: r.Subject, SubjectClear: r.SubjectClear, TraceIn: r.TraceIn, TraceOut: r.TraceOut,
		Status: r.Status, Problem: r.Problem, Digest: r.Digest, Released: r.Released,
		RequestBody: sealedTo(r.RequestBody), ResponseBody: sealedTo(r.ResponseBody),
	}
	if r.Decision != nil {
		p.Decision = &decisionV2{Allowed: r.Decision.Allowed, Reason: r.Decision.Reason}
	}
	for _, s := range r.Sources {
		p.Sources = append(p.Sources, sourceV2{
			Source: s.Source, Operation: s.Operation, TraceID: s.TraceID, SourceTrace: s.SourceTrace,
			Status: s.Status, LatencyUs: s.Latency.Microseconds(), Bytes: s.Bytes, Attempts: s.Attempts,
			Digest: s.Digest, Error: s.Error, Subject: s.Subject, SubjectClear: s.SubjectClear,
		})
	}
}

func (w *recordV2) to() (Record, error) {
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return Record{}, fmt.Errorf("%w: time: %v", ErrBadRecord, err)
	}
	p := &w.payloadV2
	r := Record{
		V: w.V, Seq: w.Seq, Time: t.UTC(), Kind: p.Kind, Call: p.Call, Request: p.Request,
		Organisation: p.Organisation, Application: p.Application, Credential: p.Credential,
		ClientIP: p.ClientIP, EndUser: p.EndUser, Purpose: p.Purpose, Grant: p.Grant,
		LegalBasis: p.LegalBasis, Service: p.Service, ServiceVersion: p.ServiceVersion, Environment: p.Environment,
		Subject: p.Subject, SubjectClear: p.SubjectClear, TraceIn: p.TraceIn, TraceOut: p.TraceOut,
		Status: p.Status, Problem: p.Problem, Digest: p.Digest, Released: p.Released,
		RequestBody: sealedFrom(p.RequestBody), ResponseBody: sealedFrom(p.ResponseBody),
	}
	if p.Decision != nil {
		r.Decision = &Decision{Allowed: p.Decision.Allowed, Reason: p.Decision.Reason}
	}
	for _, s := range p.Sources {
		r.Sources = append(r.Sources, SourceRec{
			Source: s.Source, Operation: s.Operation, TraceID: s.TraceID, SourceTrace: s.SourceTrace,
			Status: s.Status, Latency: time.Duration(s.LatencyUs) * time.Microsecond, Bytes: s.Bytes,
			Attempts: s.Attempts, Digest: s.Digest, Error: s.Error,
			Subject: s.Subject, SubjectClear: s.SubjectClear,
		})
	}
	return r, nil
}

func sealedTo(b *SealedBody) *sealedV2 {
	if b == nil {
		return nil
	}
	return &sealedV2{Alg: b.Alg, KeyID: b.KeyID, Nonce: b.Nonce, Data: b.Data}
}

func sealedFrom(b *sealedV2) *SealedBody {
	if b == nil {
		return nil
	}
	return &SealedBody{Alg: b.Alg, KeyID: b.KeyID, Nonce: b.Nonce, Data: b.Data}
}

// marshalPayload encodes everything after the frame, as a JSON object
// (appendPayload: what json.Marshal of payloadV2 writes). Callers run it
// on their own goroutine; the writer only splices the frame.
func marshalPayload(r *Record) ([]byte, error) {
	return appendPayload(make([]byte, 0, payloadSizeHint(r)), r), nil
}

// payloadBufs recycles the payload buffers of committed records: the
// writer copies each payload into its batch, then returns the buffer
// (releasePayload). A call's two records then allocate no payload.
var payloadBufs sync.Pool // of *[]byte

const maxPooledPayload = 8 << 10

// payloadBuf returns an empty buffer with room for n bytes, and the pool's
// holder to give it back in (nil when not pooled).
func payloadBuf(n int) ([]byte, *[]byte) {
	if n <= maxPooledPayload {
		h, ok := payloadBufs.Get().(*[]byte)
		if !ok {
			h = new([]byte)
		} else if cap(*h) >= n {
			return (*h)[:0], h
		}
		return make([]byte, 0, max(n, 2<<10)), h // a pooled buffer too small is dropped, its holder kept
	}
	return make([]byte, 0, n), nil
}

// releasePayload recycles p's payload buffer; p.payload is nil after.
func releasePayload(p *pending) {
	if p.pooled != nil && cap(p.payload) <= maxPooledPayload {
		*p.pooled = p.payload[:0]
		payloadBufs.Put(p.pooled) // the holder travels with the buffer: no allocation
	}
	p.payload, p.pooled = nil, nil
}

// payloadSizeHint is a little over the encoded size of r's payload
// (unless strings need escapes), so that the buffer is allocated once.
func payloadSizeHint(r *Record) int {
	n := 280 + len(r.Kind) + len(r.Call) + len(r.Organisation) + len(r.Application) + len(r.Credential) +
		len(r.ClientIP) + len(r.EndUser) + len(r.Purpose) + len(r.Grant) + len(r.LegalBasis) +
		len(r.Service) + len(r.ServiceVersion) + len(r.Environment) + len(r.Subject) + len(r.SubjectClear) +
		len(r.TraceIn) + len(r.TraceOut) + len(r.Problem) + len(r.Digest)
	if r.Decision != nil {
		n += 40 + len(r.Decision.Reason)
	}
	for _, f := range r.Released {
		n += 3 + len(f)
	}
	for i := range r.Sources {
		s := &r.Sources[i]
		n += 180 + len(s.Source) + len(s.Operation) + len(s.TraceID) + len(s.SourceTrace) + len(s.Digest) + len(s.Error) +
			len(s.Subject) + len(s.SubjectClear)
	}
	for _, b := range []*SealedBody{r.RequestBody, r.ResponseBody} {
		if b != nil {
			n += 64 + (len(b.Nonce)+len(b.Data))*4/3
		}
	}
	return n
}

// frame splices the frame onto a payload object: the exact bytes stored
// and hashed.
func frame(dst []byte, seq uint64, t time.Time, payload []byte) []byte {
	return frameAt(dst, seq, appendTime(nil, t), payload)
}

// appendTime appends t as records carry it: timeLayout in UTC, what
// t.UTC().AppendFormat(dst, timeLayout) writes for years 0–9999 (outside,
// AppendFormat), in a twentieth of its time.
func appendTime(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, timeLayout)
	}
	hour, min, sec := t.Clock()
	var b [len(timeLayout)]byte
	put := func(at, v, width int) {
		for i := at + width - 1; i >= at; i-- {
			b[i] = byte('0' + v%10)
			v /= 10
		}
	}
	put(0, year, 4)
	b[4] = '-'
	put(5, int(month), 2)
	b[7] = '-'
	put(8, day, 2)
	b[10] = 'T'
	put(11, hour, 2)
	b[13] = ':'
	put(14, min, 2)
	b[16] = ':'
	put(17, sec, 2)
	b[19] = '.'
	put(20, t.Nanosecond(), 9)
	b[29] = 'Z'
	return append(dst, b[:]...)
}

// frameAt is frame with the time already formatted by appendTime (a
// batch's records share one).
func frameAt(dst []byte, seq uint64, ts, payload []byte) []byte {
	dst = append(dst, `{"v":`...)
	dst = strconv.AppendInt(dst, Version, 10)
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"time":"`...)
	dst = append(dst, ts...)
	dst = append(dst, '"')
	if len(payload) > 2 { // payload is {...}: always at least {"kind":..}
		dst = append(dst, ',')
		dst = append(dst, payload[1:]...)
	} else {
		dst = append(dst, '}')
	}
	return dst
}

// Encode returns the canonical bytes of r in the current version: fixed
// field order, absent values omitted, time in fixed-width UTC. The store
// writes exactly these bytes and hashes them as written.
func Encode(r *Record) ([]byte, error) {
	p, err := marshalPayload(r)
	if err != nil {
		return nil, err
	}
	return frame(nil, r.Seq, r.Time, p), nil
}

// Decode reads a record of any known version into the current model.
func Decode(b []byte) (Record, error) {
	v, _, _, ok := parseFrame(b)
	if !ok {
		var peek struct {
			V *int `json:"v"`
		}
		if err := json.Unmarshal(b, &peek); err != nil || peek.V == nil {
			return Record{}, fmt.Errorf("%w: no version", ErrBadRecord)
		}
		v = *peek.V
	}
	switch v {
	case 1, 2:
		var w recordV2
		if err := json.Unmarshal(b, &w); err != nil {
			return Record{}, fmt.Errorf("%w: %v", ErrBadRecord, err)
		}
		return w.to()
	default:
		return Record{}, fmt.Errorf("%w: v%d", ErrUnknownVersion, v)
	}
}

// parseFrame reads {"v":N,"seq":S,"time":"T" without a JSON decoder; the
// store always writes the frame this way (ok is false otherwise).
func parseFrame(b []byte) (v int, seq uint64, t string, ok bool) {
	rest, ok := bytes.CutPrefix(b, []byte(`{"v":`))
	if !ok {
		return 0, 0, "", false
	}
	n, rest, ok := cutUint(rest)
	if !ok || n > 1<<16 {
		return 0, 0, "", false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"seq":`)); !ok {
		return 0, 0, "", false
	}
	seq, rest, ok = cutUint(rest)
	if !ok {
		return 0, 0, "", false
	}
	if rest, ok = bytes.CutPrefix(rest, []byte(`,"time":"`)); !ok {
		return 0, 0, "", false
	}
	i := bytes.IndexByte(rest, '"')
	if i < 0 {
		return 0, 0, "", false
	}
	return int(n), seq, string(rest[:i]), true
}

func cutUint(b []byte) (uint64, []byte, bool) {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i == 0 || i > 20 {
		return 0, b, false
	}
	n, err := strconv.ParseUint(string(b[:i]), 10, 64)
	return n, b[i:], err == nil
}
