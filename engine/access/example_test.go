package access_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/openfsb/fsb/engine/access"
)

// The admin side of onboarding, from an empty registry to a grant waiting
// for its connection test. (Certificates are left out here; see the tests.)
func Example_onboarding() {
	ctx := context.Background()
	reg, err := access.OpenInMemory(access.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	defer reg.Close()

	org, _ := reg.RegisterOrganisation(ctx, "alice", "BE 0203.201.340", "Example Agency")
	app, _ := reg.AddApplication(ctx, "alice", org.EnterpriseNumber, "benefits")
	terms := access.GrantTerms{
		Service:    access.Service{Name: "enterpriseProfile", Major: 1},
		LegalBasis: access.LegalBasis{Kind: access.Law, Reference: "Law of 16 January 2003, art. 17"},
		Purposes:   []string{"benefitEligibility"},
		Fields:     []string{"name", "directors[*].name"},
	}
	_, err = reg.SubmitLegalBasis(ctx, "alice", app.ID, terms)
	fmt.Println(err)
	reg.SignAgreement(ctx, "alice", org.EnterpriseNumber, access.Agreement{Version: "2026-01", Signer: "An Jacobs", Signed: time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)})
	g, _ := reg.SubmitLegalBasis(ctx, "alice", app.ID, terms)
	fmt.Println(g.State)
	_, err = reg.RecordConnectionTest(ctx, "alice", g.ID, access.ConnectionTest{})
	fmt.Println(strings.Replace(err.Error(), g.ID, "GRANT", 1))
	g, _ = reg.Approve(ctx, "alice", g.ID)
	fmt.Println(g.State)
	_, _, _ = reg.CreateOAuthClient(ctx, "alice", app.ID)
	allow, _ := access.ParseAllowlist("192.0.2.0/28, 2001:db8::10")
	reg.SetAllowlist(ctx, "alice", app.ID, allow)
	g, _ = reg.Grant(g.ID)
	fmt.Println(g.State)
	// Output:
	// organisation 0203201340 is registered: submitLegalBasis is not allowed; allowed next: signAgreement
	// submitted
	// grant GRANT is submitted: recordConnectionTest is not allowed; allowed next: approve, reject, amendGrant, suspend, revoke
	// approved
	// ipsRegistered
}
