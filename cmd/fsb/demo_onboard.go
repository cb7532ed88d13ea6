package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/openfsb/fsb/cmd/fsb/internal/mocksrc"
	"github.com/openfsb/fsb/engine/access"
)

// The demo consumer: a synthetic public social welfare centre. Its
// enterprise number has a valid checksum (it passes the registry's
// validation) and is not one of the mock registers' enterprises.
const (
	demoOrg          = "0888777643"
	demoOrgFormatted = "0888.777.643"
	demoOrgName      = "OCMW Demodorp (demo consumer)"
	demoAppName      = "demo-app"
	demoEndUser      = "demo-officer-1"
	demoActor        = "fsb-demo"
)

// demoAllowlist admits the demo consumer from loopback only.
var demoAllowlist = []string{"127.0.0.1/32", "::1/128"}

// demoGrant is a grant the demo consumer holds: what fsb consumer grant
// submit sends, and the call its connection test makes.
type demoGrant struct {
	service   string // flow name/vN
	basis     access.LegalBasisKind
	reference string
	purpose   string
	fields    []string // the response fields the legal basis covers; nil: all
	test      demoRequest
}

// demoRequest is one consumer call: for a connection test, or printed as curl.
type demoRequest struct {
	method, path, body string
}

// The references are real laws where one fits; "(demo)" marks an invented
// authorisation.
const (
	demoBasisCBE = "Code of Economic Law, Book III, Title 2 (Crossroads Bank for Enterprises)"
	demoBasisNR  = "Law of 8 August 1983 organising a National Register of natural persons, art. 5"
)

var demoGrants = []demoGrant{
	{service: "enterpriseProfile/v1", basis: access.Law, reference: demoBasisCBE, purpose: "supplierCheck",
		test: demoRequest{"POST", "/enterpriseProfile/v1/get", `{"enterpriseNumber":"` + mocksrc.ExampleEnterprise + `"}`}},
	{service: "enterprise/v1", basis: access.Law, reference: demoBasisCBE, purpose: "supplierCheck",
		test: demoRequest{"GET", "/enterprises/v1/enterprises/" + mocksrc.ExampleEnterprise, ""}},
	// A social enquiry needs whom and where, not the national number, the
	// birth date or the age: the grant releases two fields.
	{service: "person/v1", basis: access.Law, reference: demoBasisNR, purpose: "socialAssistance",
		fields: []string{"name", "address.municipality"},
		test:   demoRequest{"POST", "/persons/v1/get", `{"ssin":"` + mocksrc.ExampleSSIN + `"}`}},
	{service: "personResearch/v1", basis: access.PriorAuthorisation, reference: "Information Security Committee, deliberation 26/001 (demo)", purpose: "statisticalResearch",
		test: demoRequest{"POST", "/personResearch/v1/get", `{"ssin":"` + mocksrc.ExampleSSIN + `"}`}},
}

// demoGrantFor returns the demo grant of a service (name/vN).
func demoGrantFor(service string) demoGrant {
	for _, g := range demoGrants {
		if g.service == service {
			return g
		}
	}
	panic("no demo grant for " + service)
}

// demoAdmin runs fsb consumer commands against the demo's admin API.
type demoAdmin struct {
	url, tokenFile string
	metricsPath    string // the Prometheus metrics on the admin listener
}

// consumer runs `fsb consumer ARGS…` in process, the way a user types it,
// and decodes the JSON it prints (nil for commands that print text).
func (a demoAdmin) consumer(args ...string) (map[string]any, string, error) {
	var out, errb strings.Builder
	args = append(args, "-admin", a.url, "-admin-token-file", a.tokenFile, "-actor", demoActor)
	if cmdConsumer(args, &out, &errb) != 0 {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = strings.TrimSpace(out.String())
		}
		return nil, out.String(), errors.New(msg)
	}
	var m map[string]any
	_ = json.Unmarshal([]byte(out.String()), &m)
	return m, out.String(), nil
}

// demoOnboarding is what onboardDemo did or found.
type demoOnboarding struct {
	app    string
	grants map[string]string // service → grant id
	reused bool              // the data directory already held the onboarded consumer
}

// onboardDemo takes the demo consumer from an empty registry to active
// grants for every demo service with fsb consumer commands, as the README
// does by hand: organisation, user agreement, application, certificate, IP
// addresses, then per service the legal basis, its approval and the
// automated connection test against the test endpoints. In a data
// directory that already holds the consumer it only checks the grants.
func onboardDemo(a demoAdmin, pki, testURL, auditPub string) (demoOnboarding, error) {
	ob := demoOnboarding{grants: map[string]string{}}
	// The lists are unfiltered and filtered here: fsb consumer's list
	// commands remember their filter argument within one process.
	apps, _, err := a.consumer("app", "list")
	if err != nil {
		return ob, err
	}
	for _, x := range list(apps["applications"]) {
		if x["organisation"] == demoOrg && x["name"] == demoAppName {
			ob.app, _ = x["id"].(string)
			return ob, checkDemoOnboarded(a, pki, &ob)
		}
	}
	steps := [][]string{
		{"org", "add", demoOrgFormatted, demoOrgName},
		{"agreement", "sign", demoOrg, "-version", "demo-2026", "-signer", "Demo Signer"},
		{"app", "add", demoOrg, demoAppName},
	}
	for _, s := range steps {
		m, _, err := a.consumer(s...)
		if err != nil {
			return ob, err
		}
		if s[0] == "app" {
			ob.app, _ = m["id"].(string)
		}
	}
	if _, _, err := a.consumer("cert", "add", ob.app, filepath.Join(pki, demoClientCertFile)); err != nil {
		return ob, err
	}
	if _, _, err := a.consumer(append([]string{"ips", "set", ob.app}, demoAllowlist...)...); err != nil {
		return ob, err
	}
	for _, g := range demoGrants {
		args := []string{"grant", "submit", ob.app, "-service", g.service, "-basis", string(g.basis),
			"-reference", g.reference, "-purposes", g.purpose, "-quota", "1000/1h"}
		if g.fields != nil {
			args = append(args, "-fields", strings.Join(g.fields, ","))
		}
		m, _, err := a.consumer(args...)
		if err != nil {
			return ob, err
		}
		id, _ := m["id"].(string)
		if _, _, err := a.consumer("grant", "approve", id); err != nil {
			return ob, err
		}
		test := []string{"connection-test", "-url", testURL, "-grant", id,
			"-cert", filepath.Join(pki, demoClientCertFile), "-key", filepath.Join(pki, demoClientKeyFile),
			"-ca", filepath.Join(pki, demoCAFile), "-method", g.test.method, "-path", g.test.path,
			"-purpose", g.purpose, "-end-user", "demo-connection-test", "-audit-pub", auditPub}
		if g.test.body != "" {
			test = append(test, "-body", g.test.body)
		}
		if _, out, err := a.consumer(test...); err != nil || !strings.Contains(out, " is active") {
			return ob, fmt.Errorf("the connection test of %s failed: %v\n%s", g.service, err, out)
		}
		ob.grants[g.service] = id
	}
	return ob, nil
}

// checkDemoOnboarded checks, in a reused data directory, that the demo
// consumer's application holds the certificate in pki and an active grant
// for every demo service.
func checkDemoOnboarded(a demoAdmin, pki string, ob *demoOnboarding) error {
	ob.reused = true
	pair, err := tls.LoadX509KeyPair(filepath.Join(pki, demoClientCertFile), filepath.Join(pki, demoClientKeyFile))
	if err != nil {
		return err
	}
	fp := sha256.Sum256(pair.Certificate[0])
	creds, _, err := a.consumer("cert", "list")
	if err != nil {
		return err
	}
	if !slices.ContainsFunc(list(creds["credentials"]), func(c map[string]any) bool {
		return c["application"] == ob.app && c["fingerprint"] == hex.EncodeToString(fp[:]) && c["hold"] == nil
	}) {
		return fmt.Errorf("the data directory's demo consumer holds another certificate than %s (regenerated by fsb demo pki?): use a new -data-dir", filepath.Join(pki, demoClientCertFile))
	}
	grants, _, err := a.consumer("grant", "list")
	if err != nil {
		return err
	}
	for _, g := range list(grants["grants"]) {
		if g["application"] != ob.app {
			continue
		}
		svc, _ := g["service"].(map[string]any)
		name := fmt.Sprintf("%v/v%v", svc["name"], svc["major"])
		if g["state"] == "active" && g["hold"] == nil {
			ob.grants[name], _ = g["id"].(string)
		}
	}
	var missing []string
	for _, g := range demoGrants {
		if ob.grants[g.service] == "" {
			missing = append(missing, g.service)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the data directory holds the demo consumer without an active grant for %s: use a new -data-dir", strings.Join(missing, ", "))
	}
	return nil
}

func list(v any) []map[string]any {
	var out []map[string]any
	xs, _ := v.([]any)
	for _, x := range xs {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}
