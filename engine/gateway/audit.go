package gateway

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/problem"
)

// ConsumerAuditPath is where a consumer reads the audit records of its own
// calls on the consumer listener (authenticated like any call).
const ConsumerAuditPath = "/audit/v1"

// collector gathers one consumer call's source calls for its outcome
// record, reported by the flow's Observer. Parallel steps report
// concurrently, hence the mutex.
type collector struct {
	mu   sync.Mutex
	recs []audit.SourceCall
	buf  [4]audit.SourceCall // recs' first backing array: one allocation per call
}

type collectorKey struct{}

func collectorFrom(ctx context.Context) *collector {
	col, _ := ctx.Value(collectorKey{}).(*collector)
	return col
}

func (col *collector) add(c *flow.SourceCall) {
	sc := audit.SourceCall{
		Source: c.Source, Operation: c.Operation, TraceID: c.TraceID, SourceTrace: c.SourceTraceID,
		Status: c.Status, Latency: c.Duration, Bytes: int64(c.Bytes), Attempts: c.Attempts, Subject: c.Subject,
	}
	if c.Body != nil || c.Err == nil {
		sc.Digest = audit.Digest(c.Body) // outside the lock: parallel steps digest in parallel
	}
	if c.Err != nil {
		sc.Err = c.Err.Error()
	}
	col.mu.Lock()
	if col.recs == nil {
		col.recs = col.buf[:0]
	}
	col.recs = append(col.recs, sc)
	col.mu.Unlock()
}

func (col *collector) calls() []audit.SourceCall {
	col.mu.Lock()
	defer col.mu.Unlock()
	return col.recs
}

// auditObserver hands every source call to the call's collector, then to
// the runtime's own observer.
type auditObserver struct{ next flow.Observer }

func (o auditObserver) SourceCall(ctx context.Context, c *flow.SourceCall) {
	if col := collectorFrom(ctx); col != nil {
		col.add(c)
	}
	if o.next != nil {
		o.next.SourceCall(ctx, c)
	}
}

// auditedRuntime is rt with its observer wrapped for the audit trail. rt
// itself is left as it is.
func auditedRuntime(rt *flow.Runtime) *flow.Runtime {
	cp := *rt
	cp.Observer = auditObserver{next: rt.Observer}
	return &cp
}

var _ flow.Observer = auditObserver{}

// handleConsumerRecords lists the records of the caller's own calls.
func (g *Gateway) handleConsumerRecords(c *fiber.Ctx) error {
	g.traceHeaders(c)
	d := g.authenticate(c)
	if !d.Allowed {
		return g.problem(c, d.Problem)
	}
	q, prob := parseAuditQuery(c, false)
	if prob != nil {
		return g.problem(c, prob)
	}
	page, err := g.cfg.Audit.ConsumerQuery(c.UserContext(), d.Organisation, q)
	if err != nil {
		return g.problem(c, g.auditError(err))
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(page)
}

// handleConsumerProof returns the proof that one of the caller's records
// is in the chain up to a signed checkpoint. A record of another
// organisation reads as absent.
func (g *Gateway) handleConsumerProof(c *fiber.Ctx) error {
	g.traceHeaders(c)
	d := g.authenticate(c)
	if !d.Allowed {
		return g.problem(c, d.Problem)
	}
	seq, err := strconv.ParseUint(c.Params("seq"), 10, 64)
	if err != nil || seq == 0 {
		return g.problem(c, problem.NotFound("no such record"))
	}
	e, err := g.cfg.Audit.Get(c.UserContext(), seq)
	if err == nil && (e.Redacted || e.Record.Organisation != d.Organisation) {
		err = audit.ErrNotFound
	}
	if err != nil {
		return g.problem(c, g.auditError(err))
	}
	pr, err := g.cfg.Audit.Proof(c.UserContext(), seq)
	if err != nil {
		return g.problem(c, g.auditError(err))
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(pr)
}

// auditError maps a store error to a problem without internals.
func (g *Gateway) auditError(err error) *problem.Problem {
	switch {
	case errors.Is(err, audit.ErrNotFound):
		return problem.NotFound("no such record")
	case errors.Is(err, audit.ErrNotCheckpointed):
		p := problem.Unavailable("no signed checkpoint covers the record yet: retry later")
		p.RetryAfter = 10
		return p
	case strings.Contains(err.Error(), "cursor"):
		return problem.BadRequest("the cursor is not valid", problem.NewIssue(problem.InvalidInput, "query", "cursor", nil, "pass next of the previous page"))
	}
	g.log.Error("audit store", "err", err)
	return problem.Unavailable("the audit trail cannot be read now")
}

// auditQueryParams are the query parameters of a records query; admin adds
// organisation (a consumer reads only its own).
var auditQueryParams = map[string]bool{"traceId": true, "service": true, "kind": true, "from": true, "to": true, "desc": true, "limit": true, "cursor": true}

// parseAuditQuery reads a records query from the URL. The data subject is
// never a URL parameter (Belgif: no national register numbers in URLs);
// the admin API takes it in a POST body.
func parseAuditQuery(c *fiber.Ctx, admin bool) (audit.Query, *problem.Problem) {
	var q audit.Query
	var issues []problem.Issue
	vals, err := url.ParseQuery(string(c.Context().QueryArgs().QueryString()))
	if err != nil {
		return q, problem.BadRequest("the query string cannot be read")
	}
	for k, v := range vals {
		if !auditQueryParams[k] && !(admin && k == "organisation") {
			issues = append(issues, problem.NewIssue(problem.UnknownInput, "query", k, nil, "unknown query parameter"))
			continue
		}
		val := v[len(v)-1]
		bad := func(detail string) {
			issues = append(issues, problem.NewIssue(problem.InvalidInput, "query", k, nil, detail))
		}
		switch k {
		case "traceId":
			q.TraceID = val
		case "service":
			q.Service = val
		case "organisation":
			q.Organisation = val
		case "cursor":
			q.Cursor = val
		case "kind":
			for _, s := range strings.Split(val, ",") {
				switch kd := audit.Kind(strings.TrimSpace(s)); kd {
				case audit.KindRequest, audit.KindRefused, audit.KindOutcome:
					q.Kinds = append(q.Kinds, kd)
				default:
					bad("kind is request, refused or outcome")
				}
			}
		case "from", "to":
			t, err := time.Parse(time.RFC3339Nano, val)
			if err != nil {
				bad("an RFC 3339 date-time")
			} else if k == "from" {
				q.From = t
			} else {
				q.To = t
			}
		case "desc":
			b, err := strconv.ParseBool(val)
			if err != nil {
				bad("true or false")
			}
			q.Desc = b
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > 1000 {
				bad("an integer from 1 to 1000")
			}
			q.Limit = n
		}
	}
	if len(issues) > 0 {
		return q, problem.BadRequest("the query has invalid parameters", issues...)
	}
	return q, nil
}
