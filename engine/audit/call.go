package audit

import (
	"context"
	"errors"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/openfsb/fsb/engine/trace"
)

// Request is what the gateway knows about a consumer call once access has
// been decided, before any source is called.
type Request struct {
	Organisation   string
	Application    string
	Credential     string // the credential's id or certificate thumbprint, never a secret
	ClientIP       string
	EndUser        string // the official's reference, as the consumer sent it
	Purpose        string
	Grant          string // grant id
	LegalBasis     string // e.g. "law: Law of 8 August 1983, art. 5"
	Service        string
	ServiceVersion string
	// Environment is "test" for a call served on the test endpoints (the
	// connection tests of onboarding), "" for production.
	Environment string
	// Subject is the data subject's identifier (e.g. an SSIN). It is stored
	// as a keyed HMAC pseudonym, in clear only if the service's policy says so.
	Subject  string
	TraceIn  string // the consumer's BelGov-Trace-Id
	TraceOut string // the BelGov-Trace-Id of our response
	// Body is the request body; stored, encrypted, only if the service's
	// policy says so.
	Body []byte
}

// Refusal is why and how a call was refused.
type Refusal struct {
	Reason  string // e.g. "no grant for service", "ip not allowed"
	Status  int    // the HTTP status answered
	Problem string // the problem type answered
}

// SourceCall is one call to a source, as the flow reports it.
type SourceCall struct {
	Source      string
	Operation   string
	TraceID     string // the fresh BelGov-Trace-Id sent to the source
	SourceTrace string // the id the source answered with, if any
	Status      int
	Latency     time.Duration
	Bytes       int64
	Attempts    int
	Digest      string // of the source's answer: Digest(body)
	Err         string
	// Subject is whom this call consulted, in clear, when it is not the
	// call's own data subject (the flow's call step names it). It is stored
	// pseudonymised like Request.Subject and indexed: the citizen view
	// finds the consultation under it.
	Subject string
}

// Outcome is what the gateway answers.
type Outcome struct {
	Status   int
	Problem  string // problem type, for an error answer
	Response []byte // the body sent; only its digest is stored unless the policy stores bodies
	Released []string
	Sources  []SourceCall
}

// Call is one consumer call whose request record is durable.
type Call struct {
	s       *Store
	rec     callRec // what the outcome record repeats of the request
	receipt Receipt
	done    atomic.Bool
}

// callRec is what an outcome record repeats of its request record.
type callRec struct {
	Call, Organisation, Application, Service, ServiceVersion, TraceIn, TraceOut string
	// repeated only by an outcome that names a source call's subject (an
	// indirect consultation): the citizen view keeps its purpose when
	// retention removed the request record first
	Purpose, LegalBasis, Environment string
}

// ErrFinished is returned by a second Finish of the same call.
var ErrFinished = errors.New("audit: call already finished")

// Begin records an allowed call and returns once the record is durable.
// Call no source before it returns; on error answer serviceUnavailable.
func (s *Store) Begin(ctx context.Context, req Request) (*Call, error) {
	if req.Service == "" || req.Organisation == "" {
		return nil, errors.New("audit: a request needs an organisation and a service")
	}
	r, err := s.requestRecord(KindRequest, &req)
	if err != nil {
		return nil, err
	}
	r.Decision = &Decision{Allowed: true}
	p, err := s.write(ctx, &r)
	if err != nil {
		return nil, err
	}
	return &Call{s: s, receipt: p.rc, rec: callRec{
		Call: r.Call, Organisation: r.Organisation, Application: r.Application, Service: r.Service,
		ServiceVersion: r.ServiceVersion, TraceIn: r.TraceIn, TraceOut: r.TraceOut,
		Purpose: r.Purpose, LegalBasis: r.LegalBasis, Environment: r.Environment,
	}}, nil
}

// Refuse records a refused call (its only record) and returns once it is
// durable. If it fails, answer serviceUnavailable rather than the refusal.
func (s *Store) Refuse(ctx context.Context, req Request, why Refusal) (Receipt, error) {
	r, err := s.requestRecord(KindRefused, &req)
	if err != nil {
		return Receipt{}, err
	}
	r.Decision = &Decision{Allowed: false, Reason: validUTF8(why.Reason)}
	r.Status, r.Problem = why.Status, validUTF8(why.Problem)
	p, err := s.write(ctx, &r)
	if err != nil {
		return Receipt{}, err
	}
	return p.rc, nil
}

// Receipt names the call's request record.
func (c *Call) Receipt() Receipt { return c.receipt }

// ID is the random id linking the call's records.
func (c *Call) ID() string { return c.rec.Call }

// Finish records the outcome and returns once it is durable, with the
// receipt for the response header. Send nothing before it returns; on
// error answer serviceUnavailable instead.
func (c *Call) Finish(ctx context.Context, o Outcome) (Receipt, error) {
	if !c.done.CompareAndSwap(false, true) {
		return Receipt{}, ErrFinished
	}
	q := &c.rec
	r := Record{
		Kind: KindOutcome, Call: q.Call, Request: c.receipt.Seq,
		Organisation: q.Organisation, Application: q.Application, Service: q.Service,
		ServiceVersion: q.ServiceVersion, TraceIn: q.TraceIn, TraceOut: q.TraceOut,
		Status: o.Status, Problem: validUTF8(o.Problem), Digest: Digest(o.Response),
	}
	if len(o.Released) > 0 {
		r.Released = make([]string, 0, len(o.Released))
	}
	for _, f := range o.Released {
		r.Released = append(r.Released, validUTF8(f))
	}
	if len(o.Sources) > 0 {
		r.Sources = make([]SourceRec, 0, len(o.Sources))
	}
	pol := c.s.policy(q.Service)
	for _, sc := range o.Sources {
		sr := SourceRec{
			Source: validUTF8(sc.Source), Operation: validUTF8(sc.Operation),
			TraceID: validUTF8(sc.TraceID), SourceTrace: validUTF8(sc.SourceTrace),
			Status: sc.Status, Latency: sc.Latency, Bytes: sc.Bytes, Attempts: sc.Attempts,
			Digest: validUTF8(sc.Digest), Error: validUTF8(sc.Err),
		}
		if sc.Subject != "" {
			if len(c.s.opt.SubjectKeys) == 0 {
				return Receipt{}, errNoSubjectKeys
			}
			sr.Subject = c.s.subject.of(sc.Subject)
			if pol.SubjectInClear {
				sr.SubjectClear = validUTF8(sc.Subject)
			}
			r.Purpose, r.LegalBasis, r.Environment = q.Purpose, q.LegalBasis, q.Environment
		}
		r.Sources = append(r.Sources, sr)
	}
	if pol.StoreBodies && o.Response != nil {
		b, err := seal(c.s.opt.BodyKeys[0], r.Call, ResponseBodyPart, o.Response)
		if err != nil {
			return Receipt{}, err
		}
		r.ResponseBody = b
	}
	p, err := c.s.write(ctx, &r)
	if err != nil {
		return Receipt{}, err
	}
	return p.rc, nil
}

var errNoSubjectKeys = errors.New("audit: a data subject needs Options.SubjectKeys")

func (s *Store) requestRecord(kind Kind, req *Request) (Record, error) {
	r := Record{
		Kind: kind, Call: trace.NewID(),
		Organisation: validUTF8(req.Organisation), Application: validUTF8(req.Application),
		Credential: validUTF8(req.Credential), ClientIP: validUTF8(req.ClientIP),
		EndUser: validUTF8(req.EndUser), Purpose: validUTF8(req.Purpose), Grant: validUTF8(req.Grant),
		LegalBasis: validUTF8(req.LegalBasis), Service: validUTF8(req.Service),
		ServiceVersion: validUTF8(req.ServiceVersion), Environment: validUTF8(req.Environment),
		TraceIn: validUTF8(req.TraceIn), TraceOut: validUTF8(req.TraceOut),
	}
	pol := s.policy(r.Service)
	if req.Subject != "" {
		if len(s.opt.SubjectKeys) == 0 {
			return Record{}, errNoSubjectKeys
		}
		r.Subject = s.subject.of(req.Subject)
		if pol.SubjectInClear {
			r.SubjectClear = validUTF8(req.Subject)
		}
	}
	if pol.StoreBodies && req.Body != nil {
		b, err := seal(s.opt.BodyKeys[0], r.Call, RequestBodyPart, req.Body)
		if err != nil {
			return Record{}, err
		}
		r.RequestBody = b
	}
	return r, nil
}

// write encodes r on the caller's goroutine and waits for the writer.
func (s *Store) write(ctx context.Context, r *Record) (*pending, error) {
	p := &pending{}
	buf, pooled := payloadBuf(payloadSizeHint(r))
	p.payload, p.pooled = appendPayload(buf, r), pooled
	p.terms = appendIndexTerms(p.termBuf[:0], r)
	if err := s.append(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

// validUTF8 replaces each invalid byte with U+FFFD exactly as encoding/json
// does, so index keys derived before encoding match the decoded record.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	out := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			out = append(out, "\uFFFD"...)
		} else {
			out = append(out, s[i:i+n]...)
		}
		i += n
	}
	return string(out)
}
