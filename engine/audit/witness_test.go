package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// witnessFixture: a store of 2n records with checkpoints ckCut (at n
// calls) and ckFull (at 2n); cut, a copy of it at n calls, as whoever cuts
// the newest records leaves it; rewritten, the cut copy continued with n
// other calls and signed with the same key (ckRewritten).
type witnessFixture struct {
	dir, cut, rewritten        string
	ckCut, ckFull, ckRewritten Checkpoint
}

func newWitnessFixture(t *testing.T, n int) witnessFixture {
	t.Helper()
	ctx := context.Background()
	root := t.TempDir()
	f := witnessFixture{dir: filepath.Join(root, "store"), cut: filepath.Join(root, "cut"), rewritten: filepath.Join(root, "rewritten")}
	extend := func(dir string, from int) Checkpoint {
		s := openStore(t, testOptions(dir))
		defer s.Close()
		for i := range n {
			call(t, s, from+i)
		}
		ck, err := s.Checkpoint(ctx)
		if err != nil || ck.Seq != s.Head().Seq {
			t.Fatalf("checkpoint %+v %v", ck, err)
		}
		return ck
	}
	f.ckCut = extend(f.dir, 0)
	copyTree(t, f.dir, f.cut)
	f.ckFull = extend(f.dir, n)
	copyTree(t, f.cut, f.rewritten)
	f.ckRewritten = extend(f.rewritten, 100)
	return f
}

// TestVerifyWitnessed: the newest records cut from the log together with
// the checkpoints that signed them verify as a shorter, intact chain; a
// checkpoint a witness kept from before the cut names them as removed. A
// chain rewritten after a witnessed checkpoint and signed again with the
// store's key is named as altered after the last checkpoint that held. A
// checkpoint not signed by the store's key is refused.
func TestVerifyWitnessed(t *testing.T) {
	ctx := context.Background()
	f := newWitnessFixture(t, 10)
	dir, cut, rewritten, ck20, ck40 := f.dir, f.cut, f.rewritten, f.ckCut, f.ckFull

	pub := testKey.Public().(ed25519.PublicKey)
	verify := func(t *testing.T, dir string, witnessed ...Checkpoint) Report {
		t.Helper()
		opt := testOptions(dir)
		opt.Signer = nil // read-only, as fsb audit verify -dir opens it
		s := openStore(t, opt)
		defer s.Close()
		rep, err := VerifyWitnessed(ctx, s, pub, witnessed)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	for _, tc := range []struct {
		name      string
		dir       string
		witnessed []Checkpoint
		want      Problem // Kind "" = no problem
		witness   uint64  // Report.Witnessed when there is none
	}{
		{"intact", dir, []Checkpoint{ck40, ck20}, Problem{}, 40},
		{"cut, no witness", cut, nil, Problem{}, 0},
		{"cut, witness from before the cut", cut, []Checkpoint{ck20}, Problem{}, 20},
		{"cut, witness of the records cut", cut, []Checkpoint{ck20, ck40}, Problem{Seq: 21, Through: 40, Kind: Removed}, 0},
		{"rewritten, witness of the original", rewritten, []Checkpoint{ck20, ck40}, Problem{Seq: 21, Through: 40, Kind: Altered}, 0},
		{"rewritten, only the later witness", rewritten, []Checkpoint{ck40}, Problem{Seq: 1, Through: 40, Kind: Altered}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep := verify(t, tc.dir, tc.witnessed...)
			if tc.want.Kind == "" {
				if !rep.OK() || rep.Witnessed != tc.witness {
					t.Fatalf("report %+v problem %v, want no problem, witnessed %d", rep, rep.Problem, tc.witness)
				}
				return
			}
			p := rep.Problem
			if p == nil || p.Seq != tc.want.Seq || p.Through != tc.want.Through || p.Kind != tc.want.Kind {
				t.Fatalf("problem %+v, want %+v", p, tc.want)
			}
			t.Log(p)
		})
	}

	t.Run("below the anchor", func(t *testing.T) {
		opt := testOptions(t.TempDir())
		opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}} // svc1: forever
		s := openStore(t, opt)
		defer s.Close()
		call(t, s, 0) // seqs 1, 2 (svc0): pruned under an anchor at 3
		ck2, err := s.Checkpoint(ctx)
		if err != nil || ck2.Seq != 2 {
			t.Fatalf("checkpoint %+v %v", ck2, err)
		}
		for i := 1; i < 10; i++ { // svc0 calls after a kept one: redacted
			call(t, s, i)
		}
		ck20, err := s.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour)); err != nil || rep.Anchor == nil || rep.Anchor.Seq != 3 || rep.Redacted == 0 {
			t.Fatalf("prune %+v %v", rep, err)
		}
		rep, err := VerifyWitnessed(ctx, s, pub, []Checkpoint{ck2, ck20})
		if err != nil || !rep.OK() || rep.First != 3 || rep.Witnessed != 20 {
			t.Fatalf("report %+v %v %v", rep, rep.Problem, err)
		}
		// Record 2 is gone, but the anchor signed its chain hash.
		if rep, err := VerifyWitnessed(ctx, s, pub, []Checkpoint{ck2}); err != nil || !rep.OK() || rep.Witnessed != 2 {
			t.Fatalf("the anchor's predecessor witnessed: %+v %v %v", rep, rep.Problem, err)
		}
		other := Checkpoint{Seq: 2, Head: Hash{7}, Time: ck2.Time} // signed with the key, for another chain
		other.Signature = ed25519.Sign(testKey, CheckpointMessage(other.Seq, other.Head, other.Time))
		rep, err = VerifyWitnessed(ctx, s, pub, []Checkpoint{other, ck20})
		if p := rep.Problem; err != nil || p == nil || p.Kind != Altered || p.Through != 2 {
			t.Fatalf("a witness of another chain before the anchor: %+v %v", p, err)
		}
	})

	t.Run("not signed by the store's key", func(t *testing.T) {
		forged := ck20
		forged.Head[0] ^= 1
		_, other, _ := ed25519.GenerateKey(nil)
		foreign := Checkpoint{Seq: ck20.Seq, Head: ck20.Head, Time: ck20.Time}
		foreign.Signature = ed25519.Sign(other, CheckpointMessage(foreign.Seq, foreign.Head, foreign.Time))
		for _, c := range []Checkpoint{forged, foreign} {
			opt := testOptions(dir)
			opt.Signer = nil
			s := openStore(t, opt)
			_, err := VerifyWitnessed(ctx, s, pub, []Checkpoint{ck40, c})
			s.Close()
			if !errors.Is(err, ErrWitness) || !strings.Contains(err.Error(), "not signed by this store's key") {
				t.Errorf("%v", err)
			}
		}
	})
}

// TestReadWitnessed: what a witness keeps, as GET /admin/audit/head and a
// proof answer it, one document or many.
func TestReadWitnessed(t *testing.T) {
	ck := Checkpoint{Seq: 8, Head: Hash{1, 2}, Signature: []byte("sig")}
	ck2 := Checkpoint{Seq: 12, Head: Hash{3}, Signature: []byte("sig2")}
	js := func(v any) string { b, _ := json.Marshal(v); return string(b) }
	head := js(map[string]any{"head": map[string]any{"seq": 9}, "checkpoint": ck, "publicKey": "ab"})
	for _, tc := range []struct {
		name, in string
		want     []Checkpoint
		err      string
	}{
		{"head answer", head, []Checkpoint{ck}, ""},
		{"bare checkpoint", js(ck), []Checkpoint{ck}, ""},
		{"proof", js(map[string]any{"seq": 5, "hash": "00", "checkpoint": ck2}), []Checkpoint{ck2}, ""},
		{"JSON Lines", head + "\n" + js(ck2) + "\n", []Checkpoint{ck, ck2}, ""},
		{"an array", "[" + js(ck) + "," + head + "]", []Checkpoint{ck, ck}, ""},
		{"empty", " \n", nil, "no checkpoint in it"},
		{"not JSON", head + "\n{oops", nil, "value 2"},
		{"no checkpoint in a value", head + `{"head":{"seq":3}}`, nil, `value 2: neither a signed checkpoint`},
		{"unsigned checkpoint", js(Checkpoint{Seq: 3}), nil, "without a seq or a signature"},
		{"a checkpoint that is null", `{"head":{"seq":0},"checkpoint":null}`, nil, "without a seq or a signature"},
		{"a head answer before the first checkpoint, then one after", `{"head":{"seq":2,"hash":"00"},"publicKey":"ab"}` + "\n" + head, []Checkpoint{ck}, ""},
		{"only a head answer before the first checkpoint", `{"head":{"seq":2},"publicKey":"ab"}`, nil, "no checkpoint in it"},
		{"a problem appended by a failed fetch", head + `{"type":"urn:problem-type:belgif:serviceUnavailable","status":503}`, nil, "value 2: neither a signed checkpoint"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadWitnessed(strings.NewReader(tc.in))
			if tc.err != "" {
				if !errors.Is(err, ErrWitness) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].Seq != tc.want[i].Seq || got[i].Head != tc.want[i].Head || !bytes.Equal(got[i].Signature, tc.want[i].Signature) {
					t.Errorf("%d: got %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func FuzzReadWitnessed(f *testing.F) {
	f.Add([]byte(`{"checkpoint":{"seq":4,"head":"` + strings.Repeat("ab", 32) + `","time":"2026-01-02T03:04:05Z","sig":"c2ln"}}`))
	f.Add([]byte(`[{"seq":4,"sig":"c2ln"}] {"seq":5,"sig":"c2ln"}`))
	f.Add([]byte(`{"checkpoint":null,"seq":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		cks, err := ReadWitnessed(bytes.NewReader(b))
		if err != nil {
			if !errors.Is(err, ErrWitness) {
				t.Fatalf("error not ErrWitness: %v", err)
			}
			return
		}
		if len(cks) == 0 {
			t.Fatal("no error and no checkpoint")
		}
	})
}

// verifyWitnessedAt opens dir read-only and verifies it against cks.
func verifyWitnessedAt(t *testing.T, dir string, cks ...Checkpoint) Report {
	t.Helper()
	opt := testOptions(dir)
	opt.Signer = nil
	s := openStore(t, opt)
	defer s.Close()
	rep, err := VerifyWitnessed(context.Background(), s, testPub, cks)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// A witnessed checkpoint whose seq is a record redacted by Prune still holds
// (the redacted entry keeps its chain hash).
func TestWitnessRedacted(t *testing.T) {
	ctx := context.Background()
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}}
	s := openStore(t, opt)
	defer s.Close()
	for i := range 3 { // call 2 (svc0, seqs 5 and 6) is redacted after call 1 is kept
		call(t, s, i)
	}
	ck6, err := s.Checkpoint(ctx)
	if err != nil || ck6.Seq != 6 {
		t.Fatalf("checkpoint %+v %v", ck6, err)
	}
	for i := 3; i < 6; i++ {
		call(t, s, i)
	}
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour)); err != nil || rep.Redacted == 0 {
		t.Fatalf("prune %+v %v", rep, err)
	}
	if e, err := s.Get(ctx, 6); err != nil || !e.Redacted {
		t.Fatalf("record 6: %+v %v", e, err)
	}
	rep, err := VerifyWitnessed(ctx, s, testPub, []Checkpoint{ck6})
	if err != nil || !rep.OK() || rep.Witnessed != 6 {
		t.Fatalf("report %+v problem %v err %v", rep, rep.Problem, err)
	}
}

// Duplicate and unsorted witnessed checkpoints on an intact chain; the last
// record witnessed.
func TestWitnessUnsortedDuplicates(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, testOptions(dir))
	call(t, s, 0)
	ck2, _ := s.Checkpoint(ctx)
	call(t, s, 1)
	ck4, err := s.Checkpoint(ctx)
	if err != nil || ck4.Seq != 4 {
		t.Fatalf("%+v %v", ck4, err)
	}
	s.Close()
	rep := verifyWitnessedAt(t, dir, ck4, ck2, ck4, ck2, ck2)
	if !rep.OK() || rep.Witnessed != 4 || rep.Last != 4 {
		t.Fatalf("report %+v %v", rep, rep.Problem)
	}
}

// Two checkpoints signed at one seq with different heads (the original and a
// rewritten chain): whatever their order, the problem names a range that
// makes sense (Seq ≤ Through), the same one, and Witnessed does not claim the
// seq whose checkpoints disagree.
func TestWitnessConflictingSameSeq(t *testing.T) {
	f := newWitnessFixture(t, 2)
	rewritten, ck8, ck8b := f.rewritten, f.ckFull, f.ckRewritten
	if ck8.Seq != 8 || ck8b.Seq != 8 || ck8b.Head == ck8.Head {
		t.Fatalf("%+v %+v", ck8, ck8b)
	}
	a := verifyWitnessedAt(t, rewritten, ck8b, ck8)
	b := verifyWitnessedAt(t, rewritten, ck8, ck8b)
	for _, rep := range []Report{a, b} {
		if rep.OK() {
			t.Fatalf("no problem with conflicting checkpoints: %+v", rep)
		}
		if p := rep.Problem; p.Through != 0 && p.Seq > p.Through {
			t.Errorf("problem range inverted: %v (witnessed %d)", p, rep.Witnessed)
		}
	}
	if *a.Problem != *b.Problem || a.Witnessed != b.Witnessed {
		t.Errorf("order of the witness file changes the report: %v (witnessed %d) vs %v (witnessed %d)",
			a.Problem, a.Witnessed, b.Problem, b.Witnessed)
	}
}

// Every record pruned (anchor past the last), records written and signed
// after it, then the log cut back to the pruned state: the removed records
// are named from the anchor, not from record 1.
func TestWitnessRemovedAfterFullPrune(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir, cut := filepath.Join(root, "a"), filepath.Join(root, "cut")
	opt := testOptions(dir)
	opt.Default.Retention = time.Hour
	s := openStore(t, opt)
	for i := range 3 {
		call(t, s, i)
	}
	if _, err := s.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Prune(ctx, time.Now().Add(2*time.Hour))
	if err != nil || rep.Anchor == nil || rep.Anchor.Seq != 7 {
		t.Fatalf("prune %+v %v", rep, err)
	}
	s.Close()
	copyTree(t, dir, cut)
	s = openStore(t, opt)
	call(t, s, 3)
	ck, err := s.Checkpoint(ctx)
	if err != nil || ck.Seq != 8 {
		t.Fatalf("checkpoint %+v %v", ck, err)
	}
	s.Close()
	if rep := verifyWitnessedAt(t, dir, ck); !rep.OK() || rep.Witnessed != 8 {
		t.Fatalf("intact: %+v %v", rep, rep.Problem)
	}
	got := verifyWitnessedAt(t, cut, ck)
	p := got.Problem
	if p == nil || p.Kind != Removed || p.Seq != 7 || p.Through != 8 {
		t.Fatalf("report first %d last %d problem %v, want records 7…8 removed", got.First, got.Last, p)
	}
	if strings.Contains(p.Detail, "ends at record 0") {
		t.Errorf("detail: %s", p.Detail)
	}
}
