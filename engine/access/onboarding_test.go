package access

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestOnboardingStateMachine(t *testing.T) {
	ca := newPKI(t, "CA")
	r, err := OpenInMemory(testOptions(ca))
	mustDo(t, err)
	defer r.Close()

	if _, err := r.RegisterOrganisation(ctx, admin, "0203.201.341", "Bad check digits"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("invalid enterprise number: %v", err)
	}
	org, err := r.RegisterOrganisation(ctx, admin, "BE 0203 201 340", "Consumer")
	mustDo(t, err)
	if org.EnterpriseNumber != "0203201340" || org.State != OrgRegistered {
		t.Fatalf("organisation: %+v", org)
	}
	if _, err := r.RegisterOrganisation(ctx, admin, testEN, "Again"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("duplicate organisation: %v", err)
	}
	app, err := r.AddApplication(ctx, admin, testEN, "payroll")
	mustDo(t, err)
	terms := GrantTerms{Service: testService, LegalBasis: LegalBasis{Kind: PriorAuthorisation, Reference: "Decision 24/001"}, Purposes: []string{testPurpose}}

	// The agreement comes first.
	_, err = r.SubmitLegalBasis(ctx, admin, app.ID, terms)
	var te *TransitionError
	if !errors.As(err, &te) || te.State != "registered" || te.Allowed[0] != ActSignAgreement {
		t.Fatalf("submit before the agreement: %v", err)
	}
	if !strings.Contains(err.Error(), "registered") || !strings.Contains(err.Error(), ActSignAgreement) {
		t.Errorf("message does not name state and next step: %v", err)
	}
	_, err = r.SignAgreement(ctx, admin, testEN, Agreement{Version: "v3", Signer: "An Jacobs", Signed: t0})
	mustDo(t, err)
	g, err := r.SubmitLegalBasis(ctx, admin, app.ID, terms)
	mustDo(t, err)
	if g.State != GrantSubmitted || g.Environment != Production {
		t.Fatalf("submitted grant: %+v", g)
	}

	// Not yet approved: a connection test is out of order.
	if _, err := r.RecordConnectionTest(ctx, admin, g.ID, passingTest()); !errors.As(err, &te) || te.State != "submitted" {
		t.Fatalf("test before approval: %v", err)
	}
	// Credentials and addresses may come before the approval.
	cert := ca.client(t, "c")
	_, err = r.RegisterCertificate(ctx, admin, app.ID, pemOf(cert))
	mustDo(t, err)
	if got, _ := r.Grant(g.ID); got.State != GrantSubmitted {
		t.Fatalf("a credential moved a submitted grant: %s", got.State)
	}
	g, err = r.Approve(ctx, admin, g.ID)
	mustDo(t, err)
	if g.State != GrantCredentialsRegistered {
		t.Fatalf("approved with a credential: %s, want credentialsRegistered", g.State)
	}
	if _, err := r.Approve(ctx, admin, g.ID); !errors.As(err, &te) || te.State != "credentialsRegistered" {
		t.Fatalf("approve twice: %v", err)
	}
	allow, err := ParseAllowlist("192.0.2.0/28")
	mustDo(t, err)
	_, err = r.SetAllowlist(ctx, admin, app.ID, allow)
	mustDo(t, err)
	if g, _ = r.Grant(g.ID); g.State != GrantIPsRegistered {
		t.Fatalf("after the allowlist: %s", g.State)
	}

	// A failed test is stored and changes nothing; a passed one activates.
	failing := passingTest()
	failing.Checks[2].Passed = false
	g, err = r.RecordConnectionTest(ctx, admin, g.ID, failing)
	mustDo(t, err)
	if g.State != GrantIPsRegistered || g.LastTest == nil || g.LastTest.Passed {
		t.Fatalf("failed test: %+v", g)
	}
	incomplete := passingTest()
	incomplete.Checks = incomplete.Checks[:2]
	if g, _ = r.RecordConnectionTest(ctx, admin, g.ID, incomplete); g.State != GrantIPsRegistered {
		t.Fatalf("a test missing checks activated the grant")
	}
	g, err = r.RecordConnectionTest(ctx, admin, g.ID, passingTest())
	mustDo(t, err)
	if g.State != GrantActive {
		t.Fatalf("passed test: %s", g.State)
	}

	// Holds.
	mustDo(t, r.Suspend(ctx, admin, g.ID, "check"))
	if err := r.Suspend(ctx, admin, g.ID, "again"); !errors.As(err, &te) || te.State != "active (suspended)" {
		t.Fatalf("suspend twice: %v", err)
	}
	if _, err := r.Approve(ctx, admin, g.ID); !errors.As(err, &te) || strings.Join(te.Allowed, ",") != "resume,revoke" {
		t.Fatalf("approve while suspended: %v", err)
	}
	mustDo(t, r.Resume(ctx, admin, g.ID, "checked"))
	mustDo(t, r.Revoke(ctx, admin, g.ID, "ended"))
	if err := r.Resume(ctx, admin, g.ID, "oops"); !errors.As(err, &te) || te.State != "revoked" || len(te.Allowed) != 0 {
		t.Fatalf("resume after revoke: %v", err)
	}
	if err := r.Suspend(ctx, admin, "grt_nope", "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown grant: %v", err)
	}
	if err := r.Suspend(ctx, "", g.ID, "x"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no actor: %v", err)
	}

	// Rejection is final for that grant.
	g2, err := r.SubmitLegalBasis(ctx, admin, app.ID, terms)
	mustDo(t, err)
	g2, err = r.Reject(ctx, admin, g2.ID, "the protocol does not cover this service")
	mustDo(t, err)
	if _, err := r.Approve(ctx, admin, g2.ID); !errors.As(err, &te) || te.State != "rejected" {
		t.Fatalf("approve after reject: %v", err)
	}

	// Every action is in the log, in order, with before and after.
	log, err := r.Log(ctx, LogQuery{Subject: g.ID})
	mustDo(t, err)
	var got []string
	for _, e := range log {
		if e.Actor != admin || e.At.IsZero() {
			t.Errorf("entry without actor or time: %+v", e)
		}
		got = append(got, e.Action+":"+e.Before+">"+e.After)
	}
	want := []string{
		"submitLegalBasis:>submitted",
		"approve:submitted>approved",
		"advance:approved>credentialsRegistered",
		"advance:credentialsRegistered>ipsRegistered",
		"recordConnectionTest:ipsRegistered>ipsRegistered",
		"recordConnectionTest:ipsRegistered>ipsRegistered",
		"recordConnectionTest:ipsRegistered>active",
		"suspend:active>active (suspended)",
		"resume:active (suspended)>active",
		"revoke:active>revoked",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	all, err := r.Log(ctx, LogQuery{})
	mustDo(t, err)
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("log sequence has a gap at %d: %d", i, e.Seq)
		}
	}
	page, err := r.Log(ctx, LogQuery{After: 3, Limit: 2})
	mustDo(t, err)
	if len(page) != 2 || page[0].Seq != 4 {
		t.Fatalf("paging: %+v", page)
	}
}

func TestGrantTermsValidation(t *testing.T) {
	f := newFixture(t)
	base := GrantTerms{Service: testService, LegalBasis: LegalBasis{Kind: Law, Reference: "x"}, Purposes: []string{"a"}}
	for name, mutate := range map[string]func(*GrantTerms){
		"no service":        func(g *GrantTerms) { g.Service.Name = "" },
		"bad service name":  func(g *GrantTerms) { g.Service.Name = "a b" },
		"legal basis kind":  func(g *GrantTerms) { g.LegalBasis.Kind = "hunch" },
		"no reference":      func(g *GrantTerms) { g.LegalBasis.Reference = "" },
		"link":              func(g *GrantTerms) { g.LegalBasis.Link = "javascript:alert(1)" },
		"no purpose":        func(g *GrantTerms) { g.Purposes = nil },
		"purpose chars":     func(g *GrantTerms) { g.Purposes = []string{"a b"} },
		"duplicate purpose": func(g *GrantTerms) { g.Purposes = []string{"a", "a"} },
		"window":            func(g *GrantTerms) { g.NotBefore, g.NotAfter = t0, t0.Add(-time.Second) },
		"environment":       func(g *GrantTerms) { g.Environment = "staging" },
		"quota period":      func(g *GrantTerms) { g.Quota = Quota{Requests: 5} },
		"negative quota":    func(g *GrantTerms) { g.Quota = Quota{Requests: -1, Period: time.Second} },
		"bad field":         func(g *GrantTerms) { g.Fields = []string{"a[x]"} },
		"root field":        func(g *GrantTerms) { g.Fields = []string{""} },
	} {
		terms := base
		mutate(&terms)
		if _, err := f.r.SubmitLegalBasis(ctx, admin, f.app.ID, terms); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestRegisterCertificateChecks(t *testing.T) {
	f := newFixture(t)
	other := newPKI(t, "Other CA")
	if _, err := f.r.RegisterCertificate(ctx, admin, f.app.ID, pemOf(other.client(t, "x"))); !errors.Is(err, ErrInvalid) {
		t.Errorf("certificate of an untrusted CA registered: %v", err)
	}
	if _, err := f.r.RegisterCertificate(ctx, admin, f.app.ID, pemOf(f.cert)); !errors.Is(err, ErrInvalid) {
		t.Errorf("same certificate registered twice: %v", err)
	}
	if _, err := f.r.RegisterCertificate(ctx, admin, f.app.ID, []byte("junk")); !errors.Is(err, ErrInvalid) {
		t.Errorf("junk registered: %v", err)
	}
	der := f.ca.client(t, "der").Raw
	if _, err := f.r.RegisterCertificate(ctx, admin, f.app.ID, der); err != nil {
		t.Errorf("DER refused: %v", err)
	}
	if _, err := f.r.SetAllowlist(ctx, admin, f.app.ID, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}); !errors.Is(err, ErrInvalid) {
		t.Errorf("allow-all allowlist accepted: %v", err)
	}
}
