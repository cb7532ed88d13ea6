package gateway_test

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/audit"
	"github.com/openfsb/fsb/engine/gateway"
)

// TestAuditedCallOps: with the audit trail on, a call's source calls are
// still children of its flow span, and an answer withheld because the
// trail cannot record it is counted as the 503 it is.
func TestAuditedCallOps(t *testing.T) {
	store, err := audit.Open(audit.Options{Dir: t.TempDir(), Signer: auditKey, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	o := newOps(t, func(c *gateway.Config) { c.Audit = store })

	if resp, _ := o.do(t, "GET", "/both/v1/get", nil); resp.StatusCode != 200 || resp.Header.Get(headerAuditReceipt) == "" {
		t.Fatalf("audited call: %d, receipt %q", resp.StatusCode, resp.Header.Get(headerAuditReceipt))
	}
	spans := o.exp.GetSpans()
	var root string
	children := 0
	for _, s := range spans {
		if s.Name == "flow both" {
			root = s.SpanContext.SpanID().String()
		}
	}
	for _, s := range spans {
		if strings.HasPrefix(s.Name, "call ") && s.Parent.SpanID().String() == root {
			children++
		}
	}
	if root == "" || children != 2 {
		t.Fatalf("audited call: flow span %q with %d child call spans, want 2 (%d spans)", root, children, len(spans))
	}

	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if resp, _ := o.do(t, "GET", "/both/v1/get", nil); resp.StatusCode != 503 {
		t.Fatalf("with the store closed: %d", resp.StatusCode)
	}
	const want = `fsb_requests_total{consumer="anonymous",service="both",status="503"} 1`
	if got := string(o.m.Gather()); !strings.Contains(got, want) {
		t.Fatalf("exposition lacks %s:\n%s", want, got)
	}
}
