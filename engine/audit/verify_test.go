package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
)

// chainOf writes n records (CheckpointEvery 4: checkpoints at 4, 8, …).
func chainOf(t *testing.T, n int) *Store {
	t.Helper()
	s := newStore(t)
	for i := 0; i < n/2; i++ {
		call(t, s, i)
	}
	if rep := verify(t, s); !rep.OK() || rep.Last != uint64(n) || rep.Signed != uint64(n/4*4) {
		t.Fatalf("clean chain: %+v %v", rep, rep.Problem)
	}
	return s
}

func entryAt(t *testing.T, s *Store, seq uint64) entry {
	t.Helper()
	e, err := parseEntry(seq, rawGet(t, s, seqKey(pRecord, seq)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// shift moves the entries from..last to key+delta, unchanged.
func shift(t *testing.T, s *Store, from, last uint64, delta int) {
	t.Helper()
	vals := map[uint64][]byte{}
	for q := from; q <= last; q++ {
		vals[q] = rawGet(t, s, seqKey(pRecord, q))
		rawDelete(t, s, seqKey(pRecord, q))
	}
	for q, v := range vals {
		rawSet(t, s, seqKey(pRecord, uint64(int(q)+delta)), v)
	}
}

// TestVerifyNamesTheFirstBadRecord tampers with the store directly in
// Badger, the way someone with disk access would, and checks that Verify
// names the first bad seq and what was wrong.
func TestVerifyNamesTheFirstBadRecord(t *testing.T) {
	const n = 14 // checkpoints at 4, 8, 12; 13 and 14 unsigned
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, s *Store)
		seq    uint64
		kind   ProblemKind
	}{
		{"alter bytes", func(t *testing.T, s *Store) {
			v := rawGet(t, s, seqKey(pRecord, 6))
			rawSet(t, s, seqKey(pRecord, 6), bytes.Replace(v, []byte(`"org`), []byte(`"grr`), 1))
		}, 6, Altered},
		{"alter bytes and rehash the record", func(t *testing.T, s *Store) {
			e := entryAt(t, s, 6)
			rec := bytes.Replace(e.record, []byte(`"app":"app"`), []byte(`"app":"apq"`), 1)
			rawSet(t, s, seqKey(pRecord, 6), appendEntry(nil, e.prev, link(e.prev, recordDigest(rec)), rec))
		}, 6, Altered},
		{"alter the last, unsigned record", func(t *testing.T, s *Store) {
			v := rawGet(t, s, seqKey(pRecord, 14))
			rawSet(t, s, seqKey(pRecord, 14), bytes.Replace(v, []byte(`"status":200`), []byte(`"status":201`), 1))
		}, 14, Altered},
		{"delete one", func(t *testing.T, s *Store) { rawDelete(t, s, seqKey(pRecord, 6)) }, 6, Removed},
		{"delete one and renumber the rest", func(t *testing.T, s *Store) {
			rawDelete(t, s, seqKey(pRecord, 6))
			shift(t, s, 7, n, -1)
		}, 6, Removed},
		{"delete signed tail", func(t *testing.T, s *Store) {
			for q := uint64(11); q <= n; q++ {
				rawDelete(t, s, seqKey(pRecord, q))
			}
		}, 11, Removed},
		{"insert one, shifting the rest", func(t *testing.T, s *Store) {
			shift(t, s, 6, n, +1)
			prev := entryAt(t, s, 5).hash
			forged := bytes.Replace(entryAt(t, s, 7).record, []byte(`"seq":6`), []byte(`"seq":6`), 1)
			rawSet(t, s, seqKey(pRecord, 6), appendEntry(nil, prev, Hash{1}, forged))
		}, 6, Inserted},
		{"insert one with a valid link, shifting the rest", func(t *testing.T, s *Store) {
			shift(t, s, 6, n, +1)
			prev := entryAt(t, s, 5).hash
			forged := entryAt(t, s, 7).record // a copy of the old 6
			rawSet(t, s, seqKey(pRecord, 6), appendEntry(nil, prev, link(prev, recordDigest(forged)), forged))
		}, 6, Inserted},
		{"insert a foreign key among the records", func(t *testing.T, s *Store) {
			rawSet(t, s, append(seqKey(pRecord, 6), 0), rawGet(t, s, seqKey(pRecord, 6)))
		}, 7, Inserted},
		{"rewrite the chain consistently from 6", func(t *testing.T, s *Store) {
			prev := entryAt(t, s, 5).hash
			for q := uint64(6); q <= n; q++ {
				rec := entryAt(t, s, q).record
				if q == 6 {
					rec = bytes.Replace(rec, []byte(`"app":"app"`), []byte(`"app":"apq"`), 1)
				}
				h := link(prev, recordDigest(rec))
				rawSet(t, s, seqKey(pRecord, q), appendEntry(nil, prev, h, rec))
				prev = h
			}
		}, 5, Altered}, // known only to lie in 5…8: after checkpoint 4, before 8
		{"forge a checkpoint", func(t *testing.T, s *Store) {
			v := rawGet(t, s, seqKey(pCheckpoint, 8))
			v[len(v)-1] ^= 1
			rawSet(t, s, seqKey(pCheckpoint, 8), v)
		}, 8, BadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := chainOf(t, n)
			tc.tamper(t, s)
			rep := verify(t, s)
			if rep.Problem == nil {
				t.Fatalf("tampering not detected: %+v", rep)
			}
			if rep.Problem.Seq != tc.seq || rep.Problem.Kind != tc.kind {
				t.Fatalf("got %v, want record %d %s", rep.Problem, tc.seq, tc.kind)
			}
			t.Log(rep.Problem)
		})
	}
}

func TestVerifyWithAnotherKeyFails(t *testing.T) {
	s := chainOf(t, 8)
	_, other, _ := ed25519.GenerateKey(nil)
	rep, err := Verify(context.Background(), s, other.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Problem == nil || rep.Problem.Kind != BadSignature {
		t.Fatalf("checkpoints accepted under another key: %+v", rep)
	}
}

func TestProof(t *testing.T) {
	s := chainOf(t, 10) // checkpoint at 8; 9 and 10 unsigned
	ctx := context.Background()
	e, _ := s.Get(ctx, 6)
	p, err := s.Proof(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	if p.Checkpoint.Seq != 8 || len(p.Following) != 2 || p.Hash != e.Hash {
		t.Fatalf("proof: %+v", p)
	}
	if err := VerifyProof(testPub, p); err != nil {
		t.Fatal(err)
	}
	// A record newer than the last checkpoint gets one signed on demand.
	p10, err := s.Proof(ctx, 10)
	if err != nil || p10.Checkpoint.Seq != 10 || VerifyProof(testPub, p10) != nil {
		t.Fatalf("proof of the head: %+v %v", p10, err)
	}

	for name, bad := range map[string]func(p *Proof){
		"other record bytes": func(p *Proof) { p.Record = bytes.Replace(p.Record, []byte(`"app":"app"`), []byte(`"app":"apq"`), 1) },
		"dropped digest":     func(p *Proof) { p.Following = p.Following[1:] },
		"changed digest":     func(p *Proof) { p.Following[0][0] ^= 1 },
		"changed hash":       func(p *Proof) { p.Hash[0] ^= 1 },
		"forged checkpoint":  func(p *Proof) { p.Checkpoint.Head[0] ^= 1 },
	} {
		q := p
		q.Record = bytes.Clone(p.Record)
		q.Following = append([]Hash(nil), p.Following...)
		bad(&q)
		if err := VerifyProof(testPub, q); !errors.Is(err, ErrBadProof) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if VerifyProof(other.Public().(ed25519.PublicKey), p) == nil {
		t.Error("proof verified under another key")
	}
}
