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

// TestVerifyWitnessed: the newest records cut from the log together with
// the checkpoints that signed them verify as a shorter, intact chain; a
// checkpoint a witness kept from before the cut names them as removed. A
// chain rewritten after a witnessed checkpoint and signed again with the
// store's key is named as altered after the last checkpoint that held. A
// checkpoint not signed by the store's key is refused.
func TestVerifyWitnessed(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	dir := filepath.Join(root, "store")
	s := openStore(t, testOptions(dir))
	for i := range 10 {
		call(t, s, i)
	}
	ck20, err := s.Checkpoint(ctx)
	if err != nil || ck20.Seq != 20 {
		t.Fatalf("checkpoint %+v %v", ck20, err)
	}
	s.Close()
	cut := filepath.Join(root, "cut") // the store as whoever cut it back to 20 leaves it
	copyTree(t, dir, cut)
	s = openStore(t, testOptions(dir))
	for i := range 10 {
		call(t, s, 10+i)
	}
	ck40, err := s.Checkpoint(ctx)
	if err != nil || ck40.Seq != 40 {
		t.Fatalf("checkpoint %+v %v", ck40, err)
	}
	s.Close()
	rewritten := filepath.Join(root, "rewritten") // cut back to 20, then other records signed with the key
	copyTree(t, cut, rewritten)
	s = openStore(t, testOptions(rewritten))
	for i := range 10 {
		call(t, s, 100+i)
	}
	s.Close()

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
		{"a head answer before any checkpoint", `{"head":{"seq":0},"checkpoint":null}`, nil, "without a seq or a signature"},
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
