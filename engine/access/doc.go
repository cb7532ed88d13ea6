// Package access owns who may call which service, from where, why and how
// often: the consumer registry (organisations, applications, credentials, IP
// allowlists and grants bound to a legal basis), the onboarding state machine
// that moves a grant to production, the append-only admin log, OAuth2 access
// tokens, and the one decision the gateway asks on every consumer call:
// Registry.Decide.
//
// It must not know about HTTP frameworks, flows or the audit store. The
// gateway turns a request into a Call and a refusal's *problem.Problem into
// the answer; the audit package records the Decision; the admin API and the
// fsb consumer commands call the Registry's admin methods. README.md beside
// this file describes the model, the decision order, the headers, the
// problem types and the state machine, with the reasons for each choice.
package access
