package gateway

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/problem"
	"github.com/openfsb/fsb/engine/trace"
)

// guarded serves a flow behind the access registry and/or the audit trail,
// in this fixed order (SECURITY.md, AUDIT.md):
//
//  1. access.Decide; refused: record the refusal (if that fails: 503), then
//     answer the decision's problem. No source is called.
//  2. read and validate the request, evaluate the flow's legal.subject
//  3. audit Begin: the request record is durable; if not: 503, no source
//  4. run the flow with the decision's consumer
//  5. minimise the answer to the grant's fields
//  6. audit Finish with every source call and the released fields; if it
//     fails: 503 and the answer is withheld
//  7. the receipt header, then the answer
func (g *Gateway) guarded(p *flow.Plan, params []string) fiber.Handler {
	version := "v" + itoa(p.Major)
	return func(c *fiber.Ctx) error {
		ctx := context.Background()
		if g.cfg.Tracer != nil {
			ctx = c.UserContext() // the flow's span (traced)
		}
		logged := g.log.Enabled(ctx, slog.LevelInfo)
		var start time.Time
		if logged || g.cfg.Metrics != nil {
			start = time.Now()
		}
		id := g.newTrace(c)
		traceIn := ""
		if t := c.Get(trace.Header); trace.Valid(t) {
			traceIn = t
		}

		d := access.Decision{Allowed: true}
		var ip netip.Addr
		if g.cfg.Access != nil {
			call := g.accessCall(c, p)
			ip = call.ClientIP
			d = g.cfg.Access.Decide(ctx, call)
			if !d.Allowed {
				status := fiber.StatusForbidden
				if d.Problem != nil {
					status = d.Problem.Status
				}
				if logged {
					// The access-log line of a refused call; Reason never
					// holds a token, a secret or an end-user value.
					attrs := append(g.accessAttrs(c, p.Name, id, d.Organisation, status, start),
						slog.String("step", string(d.Step)), slog.String("reason", d.Reason))
					g.log.LogAttrs(ctx, slog.LevelInfo, "refused", attrs...)
				}
				err := g.refuse(ctx, c, &d, g.auditRequest(&d, ip, p.Name, version, traceIn, id, "", nil))
				if g.cfg.Metrics != nil { // the status answered: 503 if the refusal could not be recorded
					g.cfg.Metrics.Refusal(p.Name, d.Organisation, string(d.Step))
					g.cfg.Metrics.Request(p.Name, d.Organisation, c.Response().StatusCode(), time.Since(start))
				}
				return err
			}
		} else {
			ip = g.clientIP(c)
			d.Organisation = AnonymousOrganisation
		}

		req, prob := g.readRequest(c, p, params)
		var in expr.Input
		validated := false
		subject := ""
		if prob == nil && g.cfg.Audit != nil && p.Subject != nil {
			// The request record names the data subject, so the input is
			// validated here and the plan run on it (not Serve, which
			// validates again).
			if in, prob = p.Validate(req); prob == nil {
				validated = true
				subject = evalSubject(p.Subject, in, d.Consumer)
			}
		}

		var rec *audit.Call
		var col *collector
		if g.cfg.Audit != nil {
			var body []byte
			if req != nil {
				body = req.Body
			}
			var err error
			rec, err = g.cfg.Audit.Begin(ctx, g.auditRequest(&d, ip, p.Name, version, traceIn, id, subject, body))
			if err != nil {
				g.log.Error("audit: request not recorded, no source called", "flow", p.Name, "trace", id, "err", err)
				return g.unrecorded(c, p.Name, d.Organisation, start)
			}
			col = &collector{}
			ctx = context.WithValue(ctx, collectorKey{}, col)
		}

		var out *flow.Outcome
		switch {
		case prob != nil:
		case validated:
			out = p.Run(ctx, g.rt, &flow.Invocation{Input: in, Consumer: d.Consumer, TraceID: id})
		default:
			out = p.Serve(ctx, g.rt, req, id, d.Consumer)
		}
		if out != nil {
			defer out.Release()
			prob = out.Problem
		}

		var body []byte
		var released []string
		status := 0
		if prob == nil {
			body, status = out.Body, out.Status
			if d.Fields != nil {
				var err error
				if body, released, err = access.Minimise(d.Fields, out.Body); err != nil {
					g.log.Warn("minimise: the answer is not JSON; withheld", "flow", p.Name, "trace", id, "err", err)
					prob = problem.BadGateway("the answer could not be reduced to the fields your grant releases")
				}
			}
		}
		if prob != nil {
			if prob.Instance == "" {
				prob.Instance = strings.Clone(c.Path())
			}
			body, status, released = prob.JSON(), prob.Status, nil
		}

		if rec != nil {
			o := audit.Outcome{Status: status, Response: body, Released: released, Sources: col.calls()}
			if prob != nil {
				o.Problem = prob.Type
			}
			rc, err := rec.Finish(ctx, o)
			if err != nil {
				g.log.Error("audit: outcome not recorded, answer withheld", "flow", p.Name, "trace", id, "err", err)
				return g.unrecorded(c, p.Name, d.Organisation, start)
			}
			var b [audit.ReceiptLen]byte
			c.Response().Header.SetBytesV(audit.ReceiptHeader, rc.Append(b[:0])) // copies
		}
		if logged {
			g.accessLog(c, p.Name, id, d.Organisation, status, start)
		}
		if g.cfg.Metrics != nil {
			g.cfg.Metrics.Request(p.Name, d.Organisation, status, time.Since(start))
		}
		if prob != nil {
			if prob.RetryAfter > 0 {
				c.Set(fiber.HeaderRetryAfter, itoa(prob.RetryAfter))
			}
			c.Set(fiber.HeaderContentType, problem.ContentType)
		} else {
			for k, v := range out.Headers {
				c.Set(k, v)
			}
			c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		}
		c.Status(status)
		c.Response().SetBody(body) // a copy: out's buffer goes back to the pool
		return nil
	}
}

// AnonymousOrganisation is the organisation audit records name when the
// gateway runs without the access registry (every caller is let through).
const AnonymousOrganisation = "anonymous"

// evalSubject evaluates the flow's legal.subject expression; a nil or
// failing expression names no subject.
func evalSubject(prog *expr.Program, in expr.Input, consumer expr.Consumer) string {
	v, err := prog.Run(&expr.Env{Input: in, Consumer: consumer})
	if err != nil {
		return ""
	}
	return flow.Text(v)
}

// auditRequest is what the audit trail records of a call. The purpose and
// end-user headers of a call refused before they were checked are left
// out: they are unvalidated input (an end-user value may even be a
// national register number, which Decide refuses).
func (g *Gateway) auditRequest(d *access.Decision, ip netip.Addr, service, version, traceIn, traceOut, subject string, body []byte) audit.Request {
	r := audit.Request{
		Organisation: d.Organisation, Application: d.Application, Credential: d.Credential,
		Grant: d.Grant, Service: service, ServiceVersion: version,
		Subject: subject, TraceIn: traceIn, TraceOut: traceOut, Body: body,
	}
	if g.cfg.Environment == access.Test {
		r.Environment = string(access.Test)
	}
	if d.Allowed || d.Step == access.StepValidity || d.Step == access.StepQuota {
		r.Purpose, r.EndUser = d.Purpose, d.EndUser
	}
	if ip.IsValid() {
		r.ClientIP = ip.String()
	}
	if d.LegalBasis.Kind != "" {
		r.LegalBasis = string(d.LegalBasis.Kind) + ": " + d.LegalBasis.Reference
	}
	return r
}

// refuse answers a refused call. With the audit trail on, the refusal is
// recorded first; if that fails the answer is serviceUnavailable.
func (g *Gateway) refuse(ctx context.Context, c *fiber.Ctx, d *access.Decision, req audit.Request) error {
	if g.cfg.Audit != nil {
		why := audit.Refusal{Reason: d.Reason, Status: d.Problem.Status, Problem: d.Problem.Type}
		if _, err := g.cfg.Audit.Refuse(ctx, req, why); err != nil {
			g.log.Error("audit: refusal not recorded", "trace", req.TraceOut, "err", err)
			return g.problem(c, unavailable())
		}
	}
	return g.problem(c, d.Problem)
}

// unrecorded answers a call the audit trail could not record:
// serviceUnavailable, counted like every answered call.
func (g *Gateway) unrecorded(c *fiber.Ctx, flow, org string, start time.Time) error {
	if g.cfg.Metrics != nil {
		g.cfg.Metrics.Request(flow, org, fiber.StatusServiceUnavailable, time.Since(start))
	}
	return g.problem(c, unavailable())
}

func unavailable() *problem.Problem {
	p := problem.Unavailable("the call cannot be recorded in the audit trail now: retry later")
	p.RetryAfter = 1
	return p
}
