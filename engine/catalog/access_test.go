package catalog_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/catalog"
)

// TestAccessSections: without access the page has neither section; with
// it, an unrecognised visitor sees the steps, a recognised one their own
// grants, and only the service page asks who the visitor is.
func TestAccessSections(t *testing.T) {
	c := load(t, demoFlows)
	if _, page := get(t, c.Handler(), "/catalog/services/PERSON/v1"); strings.Contains(page, "How to obtain access") || strings.Contains(page, "Your access") {
		t.Error("access sections without access")
	}
	asked := 0
	var visitor *catalog.Visitor
	h := c.HandlerWithAccess(func(r *http.Request, name string, major int) *catalog.Visitor {
		asked++
		if name != "person" || major != 1 {
			t.Errorf("asked for %s v%d", name, major)
		}
		return visitor
	})
	_, page := get(t, h, "/catalog/services/PERSON/v1")
	if !strings.Contains(page, `<h2 id="obtain-h">How to obtain access</h2>`) || strings.Contains(page, "Your access") || strings.Count(page, "<li>") < len(catalog.OnboardingSteps) {
		t.Errorf("anonymous page: %s", page)
	}
	visitor = &catalog.Visitor{Organisation: "0203201340", OrganisationName: "Example <Agency>", Application: "app_1", ApplicationName: "payroll",
		Grants: []catalog.VisitorGrant{{ID: "grt_1", State: "ipsRegistered", NextStep: "connection test pending", Link: "javascript:alert(1)", Reference: "Law"}}}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/catalog/services/PERSON/v1", nil))
	page = rec.Body.String()
	for _, want := range []string{`<h2 id="access-h">Your access</h2>`, "Example &lt;Agency&gt;", "<code>grt_1</code>", "connection test pending"} {
		if !strings.Contains(page, want) {
			t.Errorf("visitor page lacks %s", want)
		}
	}
	if strings.Contains(page, "javascript:") || strings.Contains(page, "How to obtain access") {
		t.Errorf("visitor page: %s", page)
	}
	if rec.Header().Get("Cache-Control") != "private, no-store" {
		t.Errorf("Cache-Control %q", rec.Header().Get("Cache-Control"))
	}
	get(t, h, "/catalog")
	get(t, h, "/catalog/api/v1/services/PERSON/v1")
	if asked != 2 {
		t.Errorf("asked %d times, want 2 (the two page views)", asked)
	}
}
