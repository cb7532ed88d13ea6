package main

import (
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/openfsb/fsb/cmd/fsb/internal/mocksrc"
	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/trace"
)

// demoCall is a curl command the demo prints.
type demoCall struct {
	comment string
	grant   string // the service whose grant the call relies on: its purpose is stated; "" states none
	purpose string // a purpose other than the grant's (a refusal)
	noCert  bool   // call without the client certificate
	traceID string // a BelGov-Trace-Id to send, to find the call in the audit trail
	demoRequest
}

// demoPersonTrace is the trace id of the person call, looked up in the
// audit trail by the commands printed after it.
const demoPersonTrace = "demo-person-1"

// demoCalls are the service calls the demo prints first.
var demoCalls = []demoCall{
	{comment: "one enterprise from three sources (register, VAT, directors from the national register)",
		grant: "enterpriseProfile/v1", demoRequest: demoRequest{"POST", "/enterpriseProfile/v1/get", `{"enterpriseNumber":"` + mocksrc.ExampleEnterprise + `"}`}},
	{comment: "the VAT register is too slow for this one: the optional step degrades (vat.available false)",
		grant: "enterpriseProfile/v1", demoRequest: demoRequest{"POST", "/enterpriseProfile/v1/get", `{"enterpriseNumber":"` + mocksrc.SlowVATEnterprise + `"}`}},
	{comment: "an unknown field is refused with a Belgif badRequest (unknownInput)",
		grant: "enterpriseProfile/v1", demoRequest: demoRequest{"POST", "/enterpriseProfile/v1/get", `{"enterpriseNumber":"` + mocksrc.ExampleEnterprise + `","nickname":"x"}`}},
	{comment: "a research extract: minimised and pseudonymised by two sandboxed WASM plugins (project, mask)",
		grant: "personResearch/v1", demoRequest: demoRequest{"POST", "/personResearch/v1/get", `{"ssin":"` + mocksrc.ExampleSSIN + `"}`}},
	{comment: "health of the sources behind the gateway (no certificate needed)",
		noCert: true, demoRequest: demoRequest{"GET", "/health", ""}},
}

// demoAccessCalls show minimisation, refusals and the consumer's view of
// the audit trail; printed after demoCalls.
var demoAccessCalls = []demoCall{
	{comment: "a person, minimised by the grant: its legal basis covers name and address.municipality only",
		grant: "person/v1", traceID: demoPersonTrace, demoRequest: demoRequest{"POST", "/persons/v1/get", `{"ssin":"` + mocksrc.ExampleSSIN + `"}`}},
	{comment: "refused: a purpose the grant's legal basis does not cover (403 missingPermission, no source called)",
		grant: "person/v1", purpose: "marketing", demoRequest: demoRequest{"POST", "/persons/v1/get", `{"ssin":"` + mocksrc.ExampleSSIN + `"}`}},
	{comment: "refused: no client certificate (401 noAccessToken)",
		grant: "person/v1", noCert: true, demoRequest: demoRequest{"POST", "/persons/v1/get", `{"ssin":"` + mocksrc.ExampleSSIN + `"}`}},
	{comment: "the consumer's own view of the audit trail: the records of its person call, by the trace id it sent",
		demoRequest: demoRequest{"GET", gateway.ConsumerAuditPath + "/records?traceId=" + demoPersonTrace, ""}},
}

// demoBanner is what printDemo shows.
type demoBanner struct {
	addr, testAddr string
	sources        map[string]string
	pki            string
	pkiNotAfter    time.Time
	dir            string
	fresh          bool
	admin          demoAdmin
	auditPub       string
	onboarding     demoOnboarding
}

func printDemo(w io.Writer, b demoBanner) {
	base := "https://" + b.addr
	fmt.Fprintf(w, "OpenFSB demo: serving the flows in flows/ on %s\n", base)
	fmt.Fprintf(w, "  TLS with client certificates, access enforced by the consumer registry, every call in the audit trail\n")
	fmt.Fprintln(w, "mock sources:")
	for _, n := range slices.Sorted(maps.Keys(b.sources)) {
		fmt.Fprintf(w, "  %-20s %s\n", n, b.sources[n])
	}
	fmt.Fprintln(w)

	how := "onboarded at start with fsb consumer commands through the admin API, connection tests passed"
	if b.onboarding.reused {
		how = "onboarded in an earlier run of this data directory"
	}
	fmt.Fprintf(w, "demo consumer: %s, enterprise number %s, application %s (%s)\n", demoOrgName, demoOrgFormatted, demoAppName, b.onboarding.app)
	fmt.Fprintf(w, "  certificate %s (demo CA %s, valid until %s), addresses %s\n",
		filepath.Join(b.pki, demoClientCertFile), filepath.Join(b.pki, demoCAFile), b.pkiNotAfter.Format(time.DateOnly), strings.Join(demoAllowlist, " "))
	fmt.Fprintf(w, "  %s:\n", how)
	for _, g := range demoGrants {
		fields := "the whole answer"
		if g.fields != nil {
			fields = "only " + strings.Join(g.fields, ", ")
		}
		fmt.Fprintf(w, "    %-20s %s, purpose %s, releases %s\n    %-20s %s: %s\n", g.service, access.GrantActive, g.purpose, fields, "", g.basis, g.reference)
	}
	fmt.Fprintf(w, "\ndata directory: %s (registry, audit trail, keys", b.dir)
	if b.fresh {
		fmt.Fprint(w, "; removed when the demo stops, -data-dir DIR keeps one")
	}
	fmt.Fprintf(w, ")\nadmin API: %s, token in %s\ntest endpoints: https://%s\naudit checkpoint public key: %s\n",
		b.admin.url, b.admin.tokenFile, b.testAddr, b.auditPub)

	fmt.Fprintln(w, "\nTry, from the repository root:")
	for _, c := range slices.Concat(demoCalls, demoAccessCalls) {
		fmt.Fprintf(w, "\n  # %s\n  %s\n", c.comment, c.curl(base, b.pki))
	}
	fmt.Fprintf(w, "\n  # %s\n  %s\n", "the gateway's Prometheus metrics on the admin listener (admin token): the calls above, by service,\n  # consumer and status; source calls, circuits, shed calls, WASM pools, reloads (cmd/fsb/OPERATING.md)",
		b.admin.metricsCurl())
	adminArgs := " -admin " + shellQuote(b.admin.url) + " -admin-token-file " + shellQuote(b.admin.tokenFile)
	for _, c := range []struct{ comment, args string }{
		{"the audit trail, through the admin API: the person call above, by its trace id: who, from where, why,\n  # under which legal basis, which source calls, which fields were released",
			"audit query -trace-id " + demoPersonTrace},
		{"the citizen view: who consulted data about this person, when, through which service and for what\n  # purpose, including the enterprise profile that looked them up as a director (\"through\"); the\n  # subject is stored as a keyed pseudonym and looked up through it",
			"audit consultations -subject " + mocksrc.ExampleSSIN},
		{"walk the hash chain and its signed checkpoints", "audit verify"},
	} {
		fmt.Fprintf(w, "\n  # %s\n  go run ./cmd/fsb %s%s\n", c.comment, c.args, adminArgs)
	}
	witness := shellQuote(filepath.Join(b.dir, "witness.jsonl"))
	fmt.Fprintf(w, "\n  # %s\n  go run ./cmd/fsb audit witness -out %s -pub %s%s\n  go run ./cmd/fsb audit verify -witness %s%s\n",
		"keep the signed chain head as a witness would (now and then, and outside the store's reach), then\n"+
			"  # check that the chain still holds it: the newest records cut with their checkpoints are named",
		witness, b.auditPub, adminArgs, witness, adminArgs)
	if !b.fresh {
		fmt.Fprintf(w, "\n  after Ctrl-C, offline: go run ./cmd/fsb audit verify -dir %s -pub %s\n", shellQuote(filepath.Join(b.dir, "audit")), b.auditPub)
	}
	fmt.Fprintln(w, "\nCtrl-C stops the demo.")
}

// curl writes the call as a curl command for a shell, continued over lines.
func (c demoCall) curl(base, pki string) string {
	var first []string
	first = append(first, "curl -s")
	if !c.noCert {
		first = append(first, "--cert", shellQuote(filepath.Join(pki, demoClientCertFile)), "--key", shellQuote(filepath.Join(pki, demoClientKeyFile)))
	}
	first = append(first, "--cacert", shellQuote(filepath.Join(pki, demoCAFile)))
	var headers []string
	if c.grant != "" {
		purpose := c.purpose
		if purpose == "" {
			purpose = demoGrantFor(c.grant).purpose
		}
		headers = append(headers, "-H "+shellQuote(access.HeaderPurpose+": "+purpose), "-H "+shellQuote(access.HeaderEndUser+": "+demoEndUser))
	}
	if c.traceID != "" {
		headers = append(headers, "-H "+shellQuote(trace.Header+": "+c.traceID))
	}
	var req []string
	if c.method != "GET" {
		req = append(req, "-X", c.method)
	}
	req = append(req, shellQuote(base+c.path))
	if c.body != "" {
		req = append(req, "-H 'Content-Type: application/json' -d", shellQuote(c.body))
	}
	lines := []string{strings.Join(first, " ")}
	if len(headers) > 0 {
		lines = append(lines, strings.Join(headers, " "))
	}
	lines = append(lines, strings.Join(req, " "))
	if len(strings.Join(lines, " ")) < 100 {
		return strings.Join(lines, " ")
	}
	return strings.Join(lines, " \\\n       ")
}

// shellQuote quotes s for a POSIX shell unless it is plainly safe.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@%+=,-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// metricsCurl is the curl command that reads the metrics with the admin
// token, keeping the consumer requests.
func (a demoAdmin) metricsCurl() string {
	return "curl -s -H \"Authorization: Bearer $(cat " + shellQuote(a.tokenFile) + ")\" " + shellQuote(a.url+a.metricsPath) + " | grep '^fsb_requests_total'"
}
