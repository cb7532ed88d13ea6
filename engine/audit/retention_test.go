package audit

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestRedactionByHand: Prune signs each redaction, so a record whose
// content was erased by hand — its stub written with the right digest, so
// the chain still verifies — is named: as altered if its stub carries a
// signature the store's key did not make, counted in UnsignedRedactions if
// it carries none (the older format: migrated or earlier stores). The
// same holds in an export.
func TestRedactionByHand(t *testing.T) {
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}}
	fillStore(t, opt, 0, 10)
	s := openStore(t, opt)
	if _, err := s.Prune(context.Background(), time.Now().Add(2*time.Hour)); err != nil { // redacts 5–6, 9–10, …
		t.Fatal(err)
	}
	s.Close()
	frames := rawFrames(t, opt.Dir)
	stub := func(seq uint64, sig []byte) []byte { // seq's record erased: what Prune would write
		e, err := parseEntry(seq, frames[frameOf(t, frames, seq)].entry)
		if err != nil || e.redacted {
			t.Fatalf("record %d: %v", seq, err)
		}
		r, _ := Decode(e.record)
		return redactedEntry(&entry{prev: e.prev, hash: e.hash, digest: e.digest, time: r.Time, service: r.Service, sig: sig})
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	for _, tc := range []struct {
		name     string
		sig      func(seq uint64, e []byte) []byte
		problem  bool
		unsigned uint64
	}{
		{"unsigned", func(uint64, []byte) []byte { return nil }, false, 1},
		{"signed by another key", func(seq uint64, e []byte) []byte {
			p, _ := parseEntry(seq, e)
			return ed25519.Sign(other, RedactionMessage(seq, p.digest, p.time, p.service))
		}, true, 0},
		{"a signature moved from another redaction", func(uint64, []byte) []byte {
			p, _ := parseEntry(5, frames[frameOf(t, frames, 5)].entry)
			return p.sig
		}, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const victim = 7 // call 3's request, svc1: kept forever
			dir := filepath.Join(t.TempDir(), "c")
			copyTree(t, opt.Dir, dir)
			fs := slices.Clone(frames)
			i := frameOf(t, fs, victim)
			unsigned := stub(victim, nil)
			fs[i].entry = stub(victim, tc.sig(victim, unsigned))
			writeFrames(t, dir, fs)
			o := opt
			o.Dir = dir
			r := openStore(t, o)
			defer r.Close()
			v := verify(t, r)
			if got := v.Problem != nil && v.Problem.Seq == victim && v.Problem.Kind == Altered; got != tc.problem || v.UnsignedRedactions != tc.unsigned {
				t.Fatalf("verify: %+v %v; want a problem at %d: %v, unsigned redactions %d", v, v.Problem, victim, tc.problem, tc.unsigned)
			}
			var exp bytes.Buffer
			if _, err := r.Export(context.Background(), &exp, ExportOptions{}); err != nil {
				t.Fatal(err)
			}
			x, err := VerifyExport(context.Background(), &exp, testPub)
			if err != nil {
				t.Fatal(err)
			}
			if got := x.Problem != nil && x.Problem.Seq == victim; got != tc.problem || x.UnsignedRedactions != tc.unsigned {
				t.Fatalf("verify export: %+v %v", x, x.Problem)
			}
		})
	}
}

// TestExportSliceLinks: the link lines that carry an export of part of the
// trail up to its next checkpoint are digests, not redactions: a store that
// never redacted anything exports a slice without unsigned redactions.
func TestExportSliceLinks(t *testing.T) {
	s := newStore(t) // a checkpoint every 4 records
	for i := range 5 {
		call(t, s, i)
	}
	var b bytes.Buffer
	if _, err := s.Export(context.Background(), &b, ExportOptions{From: 2, To: 5}); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyExport(context.Background(), &b, testPub)
	if err != nil || !rep.OK() || rep.Links == 0 || rep.Redacted != 0 || rep.UnsignedRedactions != 0 {
		t.Fatalf("%+v %v", rep, err)
	}
}

// badRedactionSigner signs as testKey, except redactions, whose signature
// it spoils (a misbehaving HSM).
type badRedactionSigner struct{}

func (badRedactionSigner) Public() crypto.PublicKey { return testKey.Public() }

func (badRedactionSigner) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	sig, err := testKey.Sign(r, msg, o)
	if bytes.HasPrefix(msg, []byte("openfsb-audit-redaction-v1")) {
		sig[0] ^= 1
	}
	return sig, err
}

// TestPruneChecksRedactionSignatures: a redaction's signature is checked
// before the record's content is erased: a signer that spoils it makes
// Prune fail with nothing changed.
func TestPruneChecksRedactionSignatures(t *testing.T) {
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}}
	opt.Signer = badRedactionSigner{}
	fillStore(t, opt, 0, 10)
	s := openStore(t, opt)
	defer s.Close()
	if _, err := s.Prune(context.Background(), time.Now().Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("prune with a spoiled redaction signature: %v", err)
	}
	if v := verify(t, s); !v.OK() || v.Redacted != 0 || v.First != 1 {
		t.Fatalf("after the refused prune: %+v %v", v, v.Problem)
	}
}

// TestRedactionWrongKey: a signed redaction before the first checkpoint
// (no anchor) checked under a wrong key is the key's fault — badSignature
// at the checkpoint — not a record erased by hand; under the right key, a
// stub another key signed there is still named, at its own seq.
func TestRedactionWrongKey(t *testing.T) {
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}}
	fillStore(t, opt, 1, 10) // call 1 (svc1) first: no anchor; call 2's records 3–4 redacted
	s := openStore(t, opt)
	if _, err := s.Prune(context.Background(), time.Now().Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	v, err := Verify(context.Background(), s, other.Public().(ed25519.PublicKey))
	if err != nil || v.Problem == nil || v.Problem.Kind != BadSignature || v.Anchored {
		t.Fatalf("a wrong key: %+v %v", v.Problem, err)
	}
	s.Close()

	frames := rawFrames(t, opt.Dir)
	i := frameOf(t, frames, 3)
	e, err := parseEntry(3, frames[i].entry)
	if err != nil || e.sig == nil {
		t.Fatalf("record 3: %+v %v", e, err)
	}
	e.sig = ed25519.Sign(other, RedactionMessage(3, e.digest, e.time, e.service))
	frames[i].entry = redactedEntry(&e)
	writeFrames(t, opt.Dir, frames)
	s = openStore(t, opt)
	defer s.Close()
	if v := verify(t, s); v.Problem == nil || v.Problem.Seq != 3 || v.Problem.Kind != Altered {
		t.Fatalf("a stub another key signed before the first checkpoint: %+v", v.Problem)
	}
}

func TestPruneKeepsTheChainVerifiable(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}} // svc1: forever
	s := openStore(t, opt)
	ctx := context.Background()
	for i := range 10 { // call i: seqs 2i+1, 2i+2; svc(i%2)
		call(t, s, i)
	}
	rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	// Call 0 (seqs 1, 2) leads the chain: deleted under an anchor at 3.
	// Calls 2, 4, 6, 8 sit after kept records: redacted.
	if rep.Deleted != 2 || rep.Redacted != 8 || rep.Anchor == nil || rep.Anchor.Seq != 3 {
		t.Fatalf("prune: %+v", rep)
	}
	v := verify(t, s)
	if !v.OK() || !v.Anchored || v.First != 3 || v.Last != 20 || v.Redacted != 8 || v.UnsignedRedactions != 0 {
		t.Fatalf("verify after prune: %+v %v", v, v.Problem)
	}
	if _, err := s.Get(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Errorf("pruned record: %v", err)
	}
	if e, err := s.Get(ctx, 5); err != nil || !e.Redacted || e.Raw != nil || e.Record.Service != "svc0" {
		t.Errorf("redacted record: %+v %v", e, err)
	}
	if p, _ := s.Query(ctx, Query{Service: "svc0"}); len(p.Entries) != 0 {
		t.Errorf("expired records still found: %v", seqs(p))
	}
	if p, _ := s.Query(ctx, Query{Subject: request(0).Subject}); len(seqs(p)) != 1 || seqs(p)[0] != 11 {
		t.Errorf("subject index after prune finds %v, want only call 5's request (11)", seqs(p))
	}
	if p, _ := s.Query(ctx, Query{Service: "svc1"}); len(p.Entries) != 10 {
		t.Errorf("kept records: %v", seqs(p))
	}
	if _, err := s.Proof(ctx, 5); err != nil {
		t.Errorf("proof through a redacted record: %v", err)
	}

	// The chain goes on, survives a reopen, and a second prune is a no-op.
	call(t, s, 11)
	s.Close()
	s = openStore(t, opt)
	defer s.Close()
	call(t, s, 13)
	if v := verify(t, s); !v.OK() || v.Last != 24 {
		t.Fatalf("verify after reopen: %+v %v", v, v.Problem)
	}
	if rep, err := s.Prune(ctx, time.Now()); err != nil || rep.Deleted+rep.Redacted != 0 {
		t.Fatalf("second prune: %+v %v", rep, err)
	}

	// A forged anchor is caught.
	a, err := readAnchor(s.anchorPath())
	if err != nil || a == nil {
		t.Fatalf("anchor: %v %v", a, err)
	}
	a.Signature[0] ^= 1
	if err := writeAnchor(s.anchorPath(), *a); err != nil {
		t.Fatal(err)
	}
	if v := verify(t, s); v.Problem == nil || v.Problem.Kind != BadSignature {
		t.Fatalf("forged anchor: %+v", v)
	}
	if _, err := s.Prune(ctx, time.Now()); err == nil {
		t.Fatal("prune ran over a chain that does not verify")
	}
}

func TestPruneEverything(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	opt.Default.Retention = time.Hour
	s := openStore(t, opt)
	ctx := context.Background()
	for i := range 4 {
		call(t, s, i)
	}
	head := s.Head()
	old := crashImage(t, s)
	rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil || rep.Deleted != 8 || rep.Anchor.Seq != 9 || rep.Anchor.Prev != head.Hash {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	if segs := segFiles(t, dir); len(segs) != 0 {
		t.Fatalf("segments left after pruning everything: %v", segs)
	}
	// An interrupted prune leaves records below the anchor (here: the
	// anchor written, the segment not yet deleted): ignored by Verify and
	// by the head recovery, removed by the next Prune.
	s.Close()
	for _, seg := range segFiles(t, old) {
		b, _ := os.ReadFile(seg)
		os.WriteFile(filepath.Join(dir, "log", filepath.Base(seg)), b, 0o644)
	}
	s = openStore(t, opt)
	defer s.Close()
	if v := verify(t, s); !v.OK() || v.Records != 0 {
		t.Fatalf("verify with a leftover: %+v %v", v, v.Problem)
	}
	if rep, err := s.Prune(ctx, time.Now()); err != nil || rep.Deleted != 8 || rep.Anchor != nil {
		t.Fatalf("prune of a leftover: %+v %v", rep, err)
	}
	if _, err := s.Get(ctx, 7); !errors.Is(err, ErrNotFound) {
		t.Fatalf("leftover still there: %v", err)
	}
	if s.Head() != head {
		t.Fatalf("head after pruning everything and reopening: %+v, want %+v", s.Head(), head)
	}
	if rq, _ := call(t, s, 5); rq.Seq != 9 {
		t.Fatalf("continued at %d", rq.Seq)
	}
	if v := verify(t, s); !v.OK() || v.First != 9 || v.Records != 2 {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
}

func TestExportProvesItself(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i := range 10 {
		call(t, s, i)
	}
	var all bytes.Buffer
	er, err := s.Export(ctx, &all, ExportOptions{})
	if err != nil || er.Records != 20 || !er.Covered {
		t.Fatalf("export: %+v %v", er, err)
	}
	v, err := VerifyExport(ctx, bytes.NewReader(all.Bytes()), testPub)
	if err != nil || !v.OK() || v.Records != 20 || v.Signed != 20 {
		t.Fatalf("verify export: %+v %v", v, err)
	}

	// A slice is covered up to the next checkpoint by digest-only links.
	var part bytes.Buffer
	er, err = s.Export(ctx, &part, ExportOptions{From: 5, To: 9})
	if err != nil || er.Records != 5 || er.Links != 3 || !er.Covered {
		t.Fatalf("partial export: %+v %v", er, err)
	}
	v, err = VerifyExport(ctx, bytes.NewReader(part.Bytes()), testPub)
	// The links are not records of the export: records 5–9, none
	// redacted, signed by the checkpoint at 12, nothing unsigned.
	if err != nil || !v.OK() || v.First != 5 || v.Last != 9 || v.Records != 5 || v.Redacted != 0 ||
		v.Links != 3 || v.Signed != 12 || v.Unsigned() != 0 {
		t.Fatalf("verify partial export: %+v %v", v, err)
	}
	if h, err := s.Get(ctx, 9); err != nil || v.Head != h.Hash {
		t.Fatalf("verify partial export: head %x, record 9 %+v %v", v.Head, h, err)
	}
	// A record after the links is not an export's shape.
	pl := strings.Split(strings.TrimSpace(part.String()), "\n")
	if _, err := VerifyExport(ctx, strings.NewReader(strings.Join(append(pl, pl[0]), "\n")), testPub); err == nil {
		t.Fatal("a record line after the link lines was accepted")
	}

	// Editing an exported record is caught.
	lines := strings.Split(all.String(), "\n")
	lines[6] = strings.Replace(lines[6], `"app":"app"`, `"app":"apq"`, 1)
	v, err = VerifyExport(ctx, strings.NewReader(strings.Join(lines, "\n")), testPub)
	if err != nil || v.Problem == nil {
		t.Fatalf("edited export verified: %+v %v", v, err)
	}
	// Dropping one is caught too.
	lines = strings.Split(all.String(), "\n")
	lines = append(lines[:3], lines[4:]...)
	v, _ = VerifyExport(ctx, strings.NewReader(strings.Join(lines, "\n")), testPub)
	if v.Problem == nil {
		t.Fatal("export with a line dropped verified")
	}
}

// TestExportEmptyRange: a range that selects no record is ErrEmptyExport
// naming why, with nothing written (an empty file would not verify), and
// the edges of the trail still export.
func TestExportEmptyRange(t *testing.T) {
	ctx := context.Background()
	empty := newStore(t)
	var buf bytes.Buffer
	if _, err := empty.Export(ctx, &buf, ExportOptions{}); !errors.Is(err, ErrEmptyExport) || buf.Len() != 0 ||
		!strings.Contains(err.Error(), "holds no record") {
		t.Fatalf("export of an empty trail: %v, %d bytes", err, buf.Len())
	}

	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}, "svc1": {Retention: time.Hour}}
	s := openStore(t, opt)
	defer s.Close()
	for i := range 3 { // seqs 1–6
		call(t, s, i)
	}
	rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil || rep.Anchor == nil || rep.Anchor.Seq < 2 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	first := rep.Anchor.Seq // the first record kept
	for i := range 2 {      // seqs 7–10
		call(t, s, 10+i)
	}
	for _, tc := range []struct {
		name string
		o    ExportOptions
		want string // "" : exports records, else the error names this
	}{
		{"after the last record", ExportOptions{From: 11}, "ends at record 10, before from 11"},
		{"far after", ExportOptions{From: 1 << 40, To: 1 << 41}, "ends at record 10"},
		{"from above to", ExportOptions{From: 9, To: 8}, "from 9 is above to 8"},
		{"wholly pruned", ExportOptions{From: 1, To: first - 1},
			fmt.Sprintf("starts at record %d (older ones were pruned), after to %d", first, first-1)},
		{"the last record", ExportOptions{From: 10}, ""},
		{"the first kept record", ExportOptions{From: 1, To: first}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			rep, err := s.Export(ctx, &buf, tc.o)
			if tc.want == "" {
				if err != nil || rep.Records != 1 {
					t.Fatalf("export: %+v %v", rep, err)
				}
				if v, err := VerifyExport(ctx, &buf, testPub); err != nil || !v.OK() || v.Records != 1 {
					t.Fatalf("verify: %+v %v", v, err)
				}
				return
			}
			if !errors.Is(err, ErrEmptyExport) || !strings.Contains(err.Error(), tc.want) || buf.Len() != 0 {
				t.Fatalf("export %+v: %v (want %q), %d bytes written", tc.o, err, tc.want, buf.Len())
			}
		})
	}
}

func TestBackupRestore(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for i := range 10 {
		call(t, s, i)
	}
	var buf bytes.Buffer
	if err := s.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if err := Restore(ctx, dir, bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, testOptions(dir))
	defer r.Close()
	if r.Head() != s.Head() {
		t.Fatalf("restored head %+v, want %+v", r.Head(), s.Head())
	}
	if v := verify(t, r); !v.OK() || v.Records != 20 || v.Signed != 20 {
		t.Fatalf("verify restored: %+v %v", v, v.Problem)
	}
	if p, _ := r.Query(ctx, Query{TraceID: "in-3"}); len(p.Entries) != 2 {
		t.Errorf("indexes not restored: %v", seqs(p))
	}
	if rq, _ := call(t, r, 20); rq.Seq != 21 {
		t.Errorf("restored store continued at %d", rq.Seq)
	}
	if err := Restore(ctx, dir, bytes.NewReader(buf.Bytes())); err == nil {
		t.Error("restore over an existing store")
	}
}

// TestPruneKeepsOutcomesFindable: an outcome found through its request's
// index keys gets keys of its own when retention removes the request's
// (the request expired, the outcome, written later, not yet).
func TestPruneKeepsOutcomesFindable(t *testing.T) {
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}} // svc1: forever
	s := openStore(t, opt)
	defer s.Close()
	a, err := s.Begin(ctx, request(0)) // seq 1, svc0: deleted under the anchor
	if err != nil {
		t.Fatal(err)
	}
	call(t, s, 1)                      // seqs 2, 3, svc1: kept
	c, err := s.Begin(ctx, request(2)) // seq 4, svc0: redacted
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	mark := time.Now()
	time.Sleep(5 * time.Millisecond)
	if _, err := a.Finish(ctx, outcome(0)); err != nil { // seq 5
		t.Fatal(err)
	}
	if _, err := c.Finish(ctx, outcome(2)); err != nil { // seq 6
		t.Fatal(err)
	}
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Prune(ctx, mark.Add(time.Hour))
	if err != nil || rep.Deleted != 1 || rep.Redacted != 1 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	for _, tc := range []struct {
		q    Query
		want []uint64
	}{
		{Query{Service: "svc0"}, []uint64{5, 6}},
		{Query{Organisation: "org0"}, []uint64{5}},
		{Query{Organisation: "org2", Desc: true}, []uint64{6}},
		{Query{TraceID: "in-2"}, []uint64{6}},
		{Query{TraceID: "out-0"}, []uint64{5}},
	} {
		p, err := s.Query(ctx, tc.q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(p), tc.want) {
			t.Errorf("%+v after prune: %v, want %v", tc.q, seqs(p), tc.want)
		}
	}
	if v := verify(t, s); !v.OK() {
		t.Fatalf("verify: %+v %v", v, v.Problem)
	}
	// Pruning the outcomes later removes the keys they were given.
	if rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour)); err != nil || rep.Deleted+rep.Redacted != 2 {
		t.Fatalf("second prune: %+v %v", rep, err)
	}
	if p, _ := s.Query(ctx, Query{Service: "svc0"}); len(p.Entries) != 0 {
		t.Errorf("pruned outcomes still found: %v", seqs(p))
	}
}

// TestPruneKeepsAnIndirectConsultationsPurpose: an outcome that names a
// source call's subject repeats its request's purpose, legal basis and
// environment, so the citizen view still says why the person was consulted
// when retention removed the request record (written earlier) but not yet
// the outcome — deleted under the anchor, or redacted after a kept record;
// an outcome that names no source subject repeats none of it.
func TestPruneKeepsAnIndirectConsultationsPurpose(t *testing.T) {
	for _, redacted := range []bool{false, true} {
		t.Run(map[bool]string{false: "deleted", true: "redacted"}[redacted], func(t *testing.T) {
			ctx := context.Background()
			opt := testOptions(t.TempDir())
			opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}} // svc1: forever
			s := openStore(t, opt)
			defer s.Close()
			const director = "85073003328"
			if redacted {
				call(t, s, 1) // svc1, kept: the request after it is redacted
			}
			req := request(0) // svc0
			req.Environment = "test"
			c, err := s.Begin(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
			mark := time.Now()
			time.Sleep(5 * time.Millisecond)
			o := outcome(0)
			o.Sources[0].Subject = director
			out, err := c.Finish(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			_, plain := call(t, s, 1) // an outcome without a source subject
			if _, err := s.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			if rep, err := s.Prune(ctx, mark.Add(time.Hour)); err != nil || rep.Deleted+rep.Redacted != 1 || (rep.Redacted == 1) != redacted {
				t.Fatalf("prune: %+v %v", rep, err)
			}
			cp, err := s.Consultations(ctx, director, Query{})
			if err != nil {
				t.Fatal(err)
			}
			if len(cp.Consultations) != 1 {
				t.Fatalf("consultations %+v", cp.Consultations)
			}
			if got := cp.Consultations[0]; got.Seq != out.Seq || got.Request != c.Receipt().Seq || got.Purpose != req.Purpose ||
				got.LegalBasis != req.LegalBasis || got.Environment != "test" || !slices.Equal(got.Through, []string{"register.get"}) {
				t.Errorf("the indirect consultation after its request was pruned: %+v", got)
			}
			e, err := s.Get(ctx, plain.Seq)
			if err != nil {
				t.Fatal(err)
			}
			if r := e.Record; r.Kind != KindOutcome || r.Purpose != "" || r.LegalBasis != "" || r.Environment != "" {
				t.Errorf("an outcome without a source subject repeats its request: %s", e.Raw)
			}
		})
	}
}

// TestPruneDuringACall: a call whose request is pruned before it finishes
// still has its outcome found by organisation, service and trace.
func TestPruneDuringACall(t *testing.T) {
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}}
	s := openStore(t, opt)
	defer s.Close()
	call(t, s, 1)                      // seqs 1, 2, svc1: kept
	c, err := s.Begin(ctx, request(0)) // seq 3, svc0: redacted while the call runs
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour)); err != nil || rep.Redacted != 1 {
		t.Fatalf("prune: %+v %v", rep, err)
	}
	rc, err := c.Finish(ctx, outcome(0)) // seq 4
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []Query{{Service: "svc0"}, {Organisation: "org0"}, {TraceID: "in-0"}, {TraceID: "out-0", Desc: true}} {
		p, err := s.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(seqs(p), []uint64{rc.Seq}) {
			t.Errorf("%+v: %v, want the outcome %d", q, seqs(p), rc.Seq)
		}
	}
}
