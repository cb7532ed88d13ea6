package audit_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"os"

	"github.com/openfsb/fsb/engine/audit"
)

// The gateway's side of one consumer call, then the auditor's and the
// consumer's checks.
func Example() {
	dir, _ := os.MkdirTemp("", "audit-example")
	defer os.RemoveAll(dir)
	pub, priv, _ := ed25519.GenerateKey(nil) // in production: kept outside the store (file, HSM)
	s, err := audit.Open(audit.Options{
		Dir:         dir,
		Signer:      priv,
		SubjectKeys: []audit.Key{{ID: "s1", Secret: []byte("a secret of at least 16 bytes")}},
	})
	if err != nil {
		panic(err)
	}
	defer s.Close()
	ctx := context.Background()

	// Before any source is called; on error: 503 serviceUnavailable.
	call, err := s.Begin(ctx, audit.Request{
		Organisation: "0212345678", Application: "tax-portal", Purpose: "income-tax-check",
		LegalBasis: "law: Law of 8 August 1983, art. 5", Service: "person", ServiceVersion: "v1",
		Subject: "85010112345", TraceIn: "c-1", TraceOut: "0af7651916cd43dd8448eb211c80319c",
	})
	if err != nil {
		panic(err)
	}
	// … the flow calls its sources …
	receipt, err := call.Finish(ctx, audit.Outcome{Status: 200, Response: []byte(`{"name":"Jan"}`)})
	if err != nil {
		panic(err) // 503 instead of the answer
	}
	fmt.Println(audit.ReceiptHeader+":", "seq="+fmt.Sprint(receipt.Seq), "…")

	// The auditor: the whole chain and its checkpoints.
	rep, _ := audit.Verify(ctx, s, pub)
	fmt.Println("verified:", rep.OK(), rep.Records, "records")

	// The citizen: who consulted my data, and why.
	views, _ := s.Consultations(ctx, "85010112345", audit.Query{})
	for _, c := range views.Consultations {
		fmt.Println(c.Organisation, c.Service, c.Purpose, c.Status)
	}

	// The consumer: its record is in the log up to a signed checkpoint.
	proof, _ := s.Proof(ctx, receipt.Seq)
	fmt.Println("proof:", audit.VerifyProof(pub, proof) == nil && proof.Hash == receipt.Hash)
	// Output:
	// OpenFSB-Audit-Receipt: seq=2 …
	// verified: true 2 records
	// 0212345678 person income-tax-check 200
	// proof: true
}
