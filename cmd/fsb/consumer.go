package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/gateway"
	"github.com/openfsb/fsb/engine/trace"
)

// adminClient calls the admin API with the admin token.
type adminClient struct {
	base  string // http://127.0.0.1:8081
	token string
	actor string
	http  *http.Client
}

// adminFlags are the flags of every command that talks to the admin API.
type adminFlags struct {
	url, tokenFile, actor string
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	def := os.Getenv("FSB_ADMIN")
	if def == "" {
		def = "http://127.0.0.1:8081"
	}
	fs.StringVar(&f.url, "admin", def, "admin API base URL (env FSB_ADMIN)")
	fs.StringVar(&f.tokenFile, "admin-token-file", os.Getenv("FSB_ADMIN_TOKEN_FILE"), "file holding the admin token (env FSB_ADMIN_TOKEN_FILE)")
	fs.StringVar(&f.actor, "actor", os.Getenv("USER"), "who acts, for the admin log")
}

func (f *adminFlags) client() (*adminClient, error) {
	if f.tokenFile == "" {
		return nil, errors.New("-admin-token-file is required (or set FSB_ADMIN_TOKEN_FILE): the file fsb serve's -admin-token-file names")
	}
	if u, err := url.Parse(f.url); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("-admin %q: want the admin API's base URL with its scheme, e.g. http://127.0.0.1:8081", f.url)
	}
	tok, err := readPrivateFile(f.tokenFile)
	if err != nil {
		return nil, err
	}
	return &adminClient{base: strings.TrimRight(f.url, "/"), token: string(bytes.TrimSpace(tok)), actor: f.actor,
		http: &http.Client{Timeout: 5 * time.Minute}}, nil
}

// do sends in as JSON (nil: no body) and decodes a 2xx answer into out
// (nil: ignore; *[]byte: raw). A problem answer becomes the error.
func (a *adminClient) do(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, a.base+gateway.AdminPath+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if a.actor != "" {
		req.Header.Set(gateway.HeaderAdminActor, a.actor)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Title, Detail string
			Issues        []struct{ Name, Detail string }
		}
		if json.Unmarshal(b, &p) == nil && p.Title != "" {
			msg := fmt.Sprintf("%d %s", resp.StatusCode, p.Title)
			if p.Detail != "" {
				msg += ": " + p.Detail
			}
			for _, is := range p.Issues {
				msg += "; " + is.Name + ": " + is.Detail
			}
			return errors.New(msg)
		}
		return fmt.Errorf("%s", resp.Status)
	}
	switch o := out.(type) {
	case nil:
		return nil
	case *[]byte:
		*o = b
		return nil
	default:
		return json.Unmarshal(b, out)
	}
}

// consumerCommands are the subcommands of fsb consumer, each driving one
// onboarding step through the admin API.
var consumerCommands = []struct {
	name, args, summary string
	run                 func(a *adminClient, fs *flag.FlagSet, args []string, stdout io.Writer) error
}{
	{"org add", "ENTERPRISE_NUMBER NAME", "register an organisation", consumerOrgAdd},
	{"org list", "", "list organisations", func(a *adminClient, _ *flag.FlagSet, _ []string, w io.Writer) error {
		if a == nil { // the flag-registration pass: no flags
			return nil
		}
		return show(a, w, "GET", "/organisations", nil)
	}},
	{"org show", "ENTERPRISE_NUMBER", "show an organisation", consumerShow("/organisations/")},
	{"agreement sign", "ENTERPRISE_NUMBER -version V -signer NAME", "record the signed user agreement", consumerAgreement},
	{"app add", "ENTERPRISE_NUMBER NAME", "add an application", consumerAppAdd},
	{"app list", "[ENTERPRISE_NUMBER]", "list applications", consumerList("/applications", "organisation")},
	{"app show", "APP", "show an application", consumerShow("/applications/")},
	{"grant submit", "APP -service NAME/vN -basis KIND -reference REF -purposes P,… [flags]", "submit a legal basis for a service", consumerGrantSubmit},
	{"grant approve", "GRANT", "approve a submitted legal basis", consumerGrantAction("approve")},
	{"grant reject", "GRANT -reason TEXT", "reject a submitted legal basis", consumerGrantReject},
	{"grant list", "[APP]", "list grants", consumerList("/grants", "application")},
	{"grant show", "GRANT", "show a grant", consumerShow("/grants/")},
	{"cert add", "APP CERT.pem", "register a client certificate", consumerCertAdd},
	{"cert list", "[APP]", "list credentials", consumerList("/credentials", "application")},
	{"oauth add", "APP", "create an OAuth2 client (prints its secret once)", consumerOAuthAdd},
	{"ips set", "APP CIDR…", "set an application's IP allowlist", consumerIPs},
	{"test record", "GRANT CHECK=pass|fail…", "record a connection test result", consumerTestRecord},
	{"suspend", "ID -reason TEXT", "suspend an organisation, application, credential or grant", consumerHold("suspend")},
	{"resume", "ID -reason TEXT", "lift a suspension", consumerHold("resume")},
	{"revoke", "ID -reason TEXT", "revoke for good", consumerHold("revoke")},
	{"log", "[-subject ID]", "list the admin log", consumerLog},
	{"connection-test", "-url URL -grant GRANT -cert C -key K -path P -purpose P [flags]", "run the automated connection test as the consumer and record it", consumerConnectionTest},
}

func cmdConsumer(args []string, stdout, stderr io.Writer) int {
	usage := func() {
		fmt.Fprintln(stderr, "usage: fsb consumer <command> [flags] [args]\n\nOnboards consumers through the admin API (-admin, -admin-token-file).\n\ncommands:")
		for _, c := range consumerCommands {
			fmt.Fprintf(stderr, "  %-16s %s\n  %-16s   %s\n", c.name, c.summary, "", c.args)
		}
	}
	for _, c := range consumerCommands {
		words := strings.Fields(c.name)
		if len(args) < len(words) || strings.Join(args[:len(words)], " ") != c.name {
			continue
		}
		fs := flag.NewFlagSet("consumer "+c.name, flag.ContinueOnError)
		fs.SetOutput(stderr)
		var af adminFlags
		af.register(fs)
		fs.Usage = func() {
			fmt.Fprintf(stderr, "usage: fsb consumer %s %s\n\n%s\n", c.name, c.args, c.summary)
			fs.PrintDefaults()
		}
		// Flags may come before or after the positional arguments.
		rest := args[len(words):]
		c.run(nil, fs, nil, nil) // registers the command's own flags
		var pos []string
		for {
			if err := fs.Parse(rest); err != nil {
				return 2
			}
			if fs.NArg() == 0 {
				break
			}
			pos = append(pos, fs.Arg(0))
			rest = fs.Args()[1:]
		}
		a, err := af.client()
		if err != nil {
			fmt.Fprintln(stderr, "fsb consumer:", err)
			return 2
		}
		if err := c.run(a, fs, pos, stdout); err != nil {
			if errors.Is(err, errUsage) {
				fs.Usage()
				return 2
			}
			fmt.Fprintf(stderr, "fsb consumer %s: %v\n", c.name, err)
			return 1
		}
		return 0
	}
	usage()
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		return 0
	}
	return 2
}

var errUsage = errors.New("usage")

// Each command is called once with a nil client to register its flags on
// fs (flags are read back by name), then with the client to run.

func show(a *adminClient, w io.Writer, method, path string, in any) error {
	var raw []byte
	if err := a.do(method, path, in, &raw); err != nil {
		return err
	}
	var buf bytes.Buffer
	if json.Indent(&buf, raw, "", "  ") != nil {
		buf.Write(raw)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func str(fs *flag.FlagSet, name string) string { return fs.Lookup(name).Value.String() }

func consumerOrgAdd(a *adminClient, fs *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		return nil
	}
	if len(args) != 2 {
		return errUsage
	}
	return show(a, w, "POST", "/organisations", map[string]string{"enterpriseNumber": args[0], "name": args[1]})
}

func consumerShow(prefix string) func(*adminClient, *flag.FlagSet, []string, io.Writer) error {
	return func(a *adminClient, _ *flag.FlagSet, args []string, w io.Writer) error {
		if a == nil {
			return nil
		}
		if len(args) != 1 {
			return errUsage
		}
		return show(a, w, "GET", prefix+url.PathEscape(args[0]), nil)
	}
}

func consumerList(path, param string) func(*adminClient, *flag.FlagSet, []string, io.Writer) error {
	return func(a *adminClient, _ *flag.FlagSet, args []string, w io.Writer) error {
		if a == nil {
			return nil
		}
		if len(args) > 1 {
			return errUsage
		}
		target := path // not path itself: the closure serves every call
		if len(args) == 1 {
			target += "?" + param + "=" + url.QueryEscape(args[0])
		}
		return show(a, w, "GET", target, nil)
	}
}

func consumerAgreement(a *adminClient, fs *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		fs.String("version", "", "agreement version")
		fs.String("signer", "", "who signed")
		fs.String("signed", "", "when (RFC 3339; default now)")
		return nil
	}
	if len(args) != 1 {
		return errUsage
	}
	signed := time.Now().UTC()
	if s := str(fs, "signed"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return fmt.Errorf("-signed: %w", err)
		}
		signed = t
	}
	return show(a, w, "POST", "/organisations/"+url.PathEscape(args[0])+"/agreement",
		access.Agreement{Version: str(fs, "version"), Signer: str(fs, "signer"), Signed: signed})
}

func consumerAppAdd(a *adminClient, _ *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		return nil
	}
	if len(args) != 2 {
		return errUsage
	}
	return show(a, w, "POST", "/applications", map[string]string{"organisation": args[0], "name": args[1]})
}

// parseService reads name/vN (or name/N).
func parseService(s string) (access.Service, error) {
	name, major, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(strings.TrimPrefix(major, "v"))
	if !ok || name == "" || err != nil {
		return access.Service{}, fmt.Errorf("-service %q: write the flow name and major version, e.g. person/v1", s)
	}
	return access.Service{Name: name, Major: n}, nil
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func consumerGrantSubmit(a *adminClient, fs *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		fs.String("service", "", "the service: flow name and major version, e.g. person/v1")
		fs.String("basis", "law", "legal basis kind: law, protocolAgreement or priorAuthorisation")
		fs.String("reference", "", "legal basis reference, e.g. 'Law of 8 August 1983, art. 5'")
		fs.String("link", "", "legal basis link")
		fs.String("purposes", "", "comma-separated purpose codes the legal basis covers")
		fs.String("env", "production", "environment: test or production")
		fs.String("from", "", "valid from (RFC 3339)")
		fs.String("until", "", "valid until (RFC 3339)")
		fs.String("quota", "", "quota as REQUESTS/PERIOD, e.g. 1000/1h")
		fs.String("fields", "", "comma-separated response paths the legal basis covers (default: the whole answer)")
		return nil
	}
	if len(args) != 1 {
		return errUsage
	}
	svc, err := parseService(str(fs, "service"))
	if err != nil {
		return err
	}
	body := map[string]any{
		"application": args[0], "service": svc,
		"legalBasis": access.LegalBasis{Kind: access.LegalBasisKind(str(fs, "basis")), Reference: str(fs, "reference"), Link: str(fs, "link")},
		"purposes":   splitList(str(fs, "purposes")), "environment": str(fs, "env"),
	}
	for _, k := range [][2]string{{"from", "notBefore"}, {"until", "notAfter"}} {
		if s := str(fs, k[0]); s != "" {
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				return fmt.Errorf("-%s: %w", k[0], err)
			}
			body[k[1]] = s
		}
	}
	if q := str(fs, "quota"); q != "" {
		n, period, ok := strings.Cut(q, "/")
		reqs, err := strconv.Atoi(n)
		if !ok || err != nil {
			return fmt.Errorf("-quota %q: write REQUESTS/PERIOD, e.g. 1000/1h", q)
		}
		body["quota"] = map[string]any{"requests": reqs, "period": period}
	}
	if f := str(fs, "fields"); f != "" {
		body["fields"] = splitList(f)
	}
	return show(a, w, "POST", "/grants", body)
}

func consumerGrantAction(action string) func(*adminClient, *flag.FlagSet, []string, io.Writer) error {
	return func(a *adminClient, _ *flag.FlagSet, args []string, w io.Writer) error {
		if a == nil {
			return nil
		}
		if len(args) != 1 {
			return errUsage
		}
		return show(a, w, "POST", "/grants/"+url.PathEscape(args[0])+"/"+action, nil)
	}
}

func consumerGrantReject(a *adminClient, fs *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		fs.String("reason", "", "why the legal basis is rejected")
		return nil
	}
	if len(args) != 1 {
		return errUsage
	}
	return show(a, w, "POST", "/grants/"+url.PathEscape(args[0])+"/reject", map[string]string{"reason": str(fs, "reason")})
}

func consumerCertAdd(a *adminClient, _ *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		return nil
	}
	if len(args) != 2 {
		return errUsage
	}
	pem, err := os.ReadFile(args[1])
	if err != nil {
		return err
	}
	return show(a, w, "POST", "/applications/"+url.PathEscape(args[0])+"/certificates", map[string]string{"certificate": string(pem)})
}

func consumerOAuthAdd(a *adminClient, _ *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		return nil
	}
	if len(args) != 1 {
		return errUsage
	}
	return show(a, w, "POST", "/applications/"+url.PathEscape(args[0])+"/oauthClients", nil)
}

func consumerIPs(a *adminClient, _ *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		return nil
	}
	if len(args) < 1 {
		return errUsage
	}
	list := []string{}
	for _, x := range args[1:] {
		list = append(list, splitList(x)...)
	}
	return show(a, w, "PUT", "/applications/"+url.PathEscape(args[0])+"/allowlist", map[string]any{"allowlist": list})
}

func consumerTestRecord(a *adminClient, _ *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		return nil
	}
	if len(args) < 2 {
		return errUsage
	}
	t := access.ConnectionTest{At: time.Now().UTC()}
	for _, x := range args[1:] {
		name, res, ok := strings.Cut(x, "=")
		if !ok || res != "pass" && res != "fail" {
			return fmt.Errorf("%q: write CHECK=pass or CHECK=fail", x)
		}
		t.Checks = append(t.Checks, access.Check{Name: name, Passed: res == "pass"})
	}
	return show(a, w, "POST", "/grants/"+url.PathEscape(args[0])+"/connectionTests", t)
}

func consumerHold(action string) func(*adminClient, *flag.FlagSet, []string, io.Writer) error {
	return func(a *adminClient, fs *flag.FlagSet, args []string, w io.Writer) error {
		if a == nil {
			fs.String("reason", "", "why (for the admin log)")
			return nil
		}
		if len(args) != 1 {
			return errUsage
		}
		return show(a, w, "POST", "/holds/"+url.PathEscape(args[0])+"/"+action, map[string]string{"reason": str(fs, "reason")})
	}
}

func consumerLog(a *adminClient, fs *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		fs.String("subject", "", "only entries about this id")
		return nil
	}
	if len(args) != 0 {
		return errUsage
	}
	path := "/log"
	if s := str(fs, "subject"); s != "" {
		path += "?subject=" + url.QueryEscape(s)
	}
	return show(a, w, "GET", path, nil)
}

// consumerConnectionTest runs the automated connection test as the
// consumer against a test endpoint of a granted service, then records the
// result through the admin API. Checks (access.RequiredChecks):
//
//   - tls: a TLS connection with the consumer's certificate succeeds, and
//     the same call without a certificate is refused (401);
//   - certificateBinding: the call with the certificate is allowed (2xx):
//     the certificate is bound to the application holding the grant;
//   - wrongPurposeRefused: the same call with another purpose is refused
//     with missingPermission (403);
//   - traceIdEchoed: our BelGov-Trace-Id comes back as BelGov-Related-Trace-Id;
//   - auditRecordRetrievable: the call's records are found under our trace
//     id through the consumer's own audit API, and the receipt's proof
//     verifies when the operator's public key is given (-audit-pub).
func consumerConnectionTest(a *adminClient, fs *flag.FlagSet, args []string, w io.Writer) error {
	if a == nil {
		fs.String("url", "", "base URL of the service's test endpoint, e.g. https://fsb.example:8443")
		fs.String("grant", "", "the grant under test")
		fs.String("cert", "", "the consumer's client certificate (PEM)")
		fs.String("key", "", "its private key (PEM)")
		fs.String("ca", "", "CA bundle that the server certificate chains to (default: the system roots)")
		fs.String("method", "GET", "method of the test call")
		fs.String("path", "", "path of the test call, e.g. /persons/v1/get")
		fs.String("body", "", "JSON body of the test call")
		fs.String("purpose", "", "a purpose the grant covers")
		fs.String("end-user", "connection-test", "the OpenFSB-End-User value")
		fs.String("audit-pub", "", "the operator's audit public key (hex) to verify the receipt's proof")
		return nil
	}
	if len(args) != 0 || str(fs, "url") == "" || str(fs, "grant") == "" || str(fs, "path") == "" || str(fs, "purpose") == "" {
		return errUsage
	}
	cert, err := tls.LoadX509KeyPair(str(fs, "cert"), str(fs, "key"))
	if err != nil {
		return fmt.Errorf("-cert/-key: %w", err)
	}
	tcfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca := str(fs, "ca"); ca != "" {
		if tcfg.RootCAs, err = loadCertPool(ca); err != nil {
			return fmt.Errorf("-ca: %w", err)
		}
	}
	withCert := tcfg.Clone()
	withCert.Certificates = []tls.Certificate{cert}
	client := func(c *tls.Config) *http.Client {
		return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: c}}
	}
	base := strings.TrimRight(str(fs, "url"), "/")
	call := func(hc *http.Client, method, path, purpose, traceID string, body []byte) (*http.Response, []byte, error) {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequestWithContext(context.Background(), method, base+path, rd)
		if err != nil {
			return nil, nil, err
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if purpose != "" {
			req.Header.Set(access.HeaderPurpose, purpose)
			req.Header.Set(access.HeaderEndUser, str(fs, "end-user"))
		}
		req.Header.Set(trace.Header, traceID)
		resp, err := hc.Do(req)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp, b, err
	}
	var body []byte
	if b := str(fs, "body"); b != "" {
		body = []byte(b)
	}
	method, path, purpose := strings.ToUpper(str(fs, "method")), str(fs, "path"), str(fs, "purpose")
	checks := map[string]*access.Check{}
	for _, n := range access.RequiredChecks {
		checks[n] = &access.Check{Name: n}
	}
	set := func(name string, ok bool, detail string) { checks[name].Passed, checks[name].Detail = ok, detail }

	// 1. The call, with the certificate and a purpose of the grant.
	traceID := trace.NewID()
	resp, rbody, err := call(client(withCert), method, path, purpose, traceID, body)
	var receipt string
	switch {
	case err != nil:
		set(access.CheckTLS, false, "the TLS call failed: "+err.Error())
		set(access.CheckCertBinding, false, "no answer")
	case resp.TLS == nil:
		set(access.CheckTLS, false, "the endpoint does not use TLS")
		set(access.CheckCertBinding, false, "no TLS")
	default:
		// Without a certificate the same call must be refused.
		r0, _, err0 := call(client(tcfg), method, path, purpose, trace.NewID(), body)
		switch {
		case err0 != nil:
			set(access.CheckTLS, false, "the call without a certificate failed to connect: "+err0.Error())
		case r0.StatusCode != 401:
			set(access.CheckTLS, false, fmt.Sprintf("the call without a certificate got %d, want 401", r0.StatusCode))
		default:
			set(access.CheckTLS, true, fmt.Sprintf("TLS 1.%d; without a certificate: 401", resp.TLS.Version-tls.VersionTLS10))
		}
		if resp.StatusCode/100 == 2 {
			set(access.CheckCertBinding, true, fmt.Sprintf("status %d with the certificate", resp.StatusCode))
		} else {
			set(access.CheckCertBinding, false, fmt.Sprintf("status %d with the certificate: %s", resp.StatusCode, truncate(rbody, 300)))
		}
		if rel := resp.Header.Get(trace.RelatedHeader); rel == traceID {
			set(access.CheckTraceID, true, "echoed as "+trace.RelatedHeader)
		} else {
			set(access.CheckTraceID, false, fmt.Sprintf("%s is %q, want %q", trace.RelatedHeader, rel, traceID))
		}
		receipt = resp.Header.Get(audit.ReceiptHeader)
	}

	// 2. The same call with a purpose the grant does not cover.
	if err == nil {
		r2, b2, err2 := call(client(withCert), method, path, "openfsb-connection-test-wrong-purpose", trace.NewID(), body)
		switch {
		case err2 != nil:
			set(access.CheckWrongPurpose, false, err2.Error())
		case r2.StatusCode == 403 && bytes.Contains(b2, []byte("missingPermission")):
			set(access.CheckWrongPurpose, true, "403 missingPermission")
		default:
			set(access.CheckWrongPurpose, false, fmt.Sprintf("got %d: %s", r2.StatusCode, truncate(b2, 300)))
		}
	}

	// 3. The audit records of call 1, through the consumer's own audit API.
	if err == nil {
		ok, detail := auditRetrievable(client(withCert), base, traceID, receipt, str(fs, "audit-pub"))
		set(access.CheckAuditRetrievable, ok, detail)
	}

	result := access.ConnectionTest{At: time.Now().UTC()}
	passed := true
	for _, n := range access.RequiredChecks {
		result.Checks = append(result.Checks, *checks[n])
		passed = passed && checks[n].Passed
		mark := "FAIL"
		if checks[n].Passed {
			mark = "ok  "
		}
		fmt.Fprintf(w, "%s %-22s %s\n", mark, n, checks[n].Detail)
	}
	var g access.Grant
	if err := a.do("POST", "/grants/"+url.PathEscape(str(fs, "grant"))+"/connectionTests", result, &g); err != nil {
		return fmt.Errorf("recording the result: %w", err)
	}
	fmt.Fprintf(w, "recorded: grant %s is %s\n", g.ID, g.State)
	if !passed {
		return errors.New("the connection test failed")
	}
	return nil
}

// auditRetrievable looks the call up by its trace id and, given the
// operator's public key, checks the receipt's proof.
func auditRetrievable(hc *http.Client, base, traceID, receipt, pubHex string) (bool, string) {
	get := func(path string, out any) error {
		resp, err := hc.Get(base + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		if resp.StatusCode != 200 {
			return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, truncate(b, 200))
		}
		return json.Unmarshal(b, out)
	}
	var page audit.Page
	if err := get(gateway.ConsumerAuditPath+"/records?traceId="+url.QueryEscape(traceID), &page); err != nil {
		return false, err.Error()
	}
	kinds := map[audit.Kind]bool{}
	for _, e := range page.Entries {
		kinds[e.Record.Kind] = true
	}
	if !kinds[audit.KindRequest] || !kinds[audit.KindOutcome] {
		return false, fmt.Sprintf("%d record(s) under trace id %s, want a request and an outcome", len(page.Entries), traceID)
	}
	detail := fmt.Sprintf("request and outcome records found under trace id %s", traceID)
	if receipt == "" || pubHex == "" {
		return true, detail
	}
	rc, err := audit.ParseReceipt(receipt)
	if err != nil {
		return false, "receipt header: " + err.Error()
	}
	pub, err := parsePublicKey(pubHex)
	if err != nil {
		return false, "-audit-pub: " + err.Error()
	}
	var p audit.Proof
	if err := get(fmt.Sprintf("%s/records/%d/proof", gateway.ConsumerAuditPath, rc.Seq), &p); err != nil {
		return false, err.Error()
	}
	if p.Hash != rc.Hash {
		return false, "the proof is for another chain position than the receipt"
	}
	if err := audit.VerifyProof(pub, p); err != nil {
		return false, err.Error()
	}
	return true, detail + "; the receipt's proof verifies"
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
