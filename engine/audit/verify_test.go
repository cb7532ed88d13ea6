package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"slices"
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

func entryAt(t *testing.T, frames []rawFrame, seq uint64) entry {
	t.Helper()
	e, err := parseEntry(seq, frames[frameOf(t, frames, seq)].entry)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// shift renumbers the frames from index i on by delta, unchanged otherwise.
func shift(frames []rawFrame, i int, delta int) {
	for ; i < len(frames); i++ {
		frames[i].seq = uint64(int(frames[i].seq) + delta)
	}
}

// TestVerifyNamesTheFirstBadRecord tampers with a crash image of the store
// by editing its files, the way someone with disk access would (checksums
// fixed, unless the case says otherwise), and checks that Verify names the
// first bad seq and what was wrong.
func TestVerifyNamesTheFirstBadRecord(t *testing.T) {
	const n = 14 // checkpoints at 4, 8, 12; 13 and 14 unsigned
	type frames = []rawFrame
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, dir string, f frames) frames
		seq    uint64
		kind   ProblemKind
	}{
		{"alter bytes", func(t *testing.T, _ string, f frames) frames {
			i := frameOf(t, f, 6)
			f[i].entry = bytes.Replace(f[i].entry, []byte(`"org`), []byte(`"grr`), 1)
			return f
		}, 6, Altered},
		{"alter bytes, checksum left as it was", func(t *testing.T, dir string, f frames) frames {
			seg := segFiles(t, dir)[0]
			b, _ := os.ReadFile(seg)
			rec := entryAt(t, f, 6).record
			at := bytes.Index(b, rec) + bytes.Index(rec, []byte(`"app":"app"`))
			b[at+9] = 'q'
			os.WriteFile(seg, b, 0o644)
			return nil
		}, 6, Altered},
		{"alter bytes and rehash the record", func(t *testing.T, _ string, f frames) frames {
			e := entryAt(t, f, 6)
			rec := bytes.Replace(e.record, []byte(`"app":"app"`), []byte(`"app":"apq"`), 1)
			f[frameOf(t, f, 6)].entry = appendEntry(nil, e.prev, link(e.prev, recordDigest(rec)), rec)
			return f
		}, 6, Altered},
		{"alter the last, unsigned record", func(t *testing.T, _ string, f frames) frames {
			i := frameOf(t, f, 14)
			f[i].entry = bytes.Replace(f[i].entry, []byte(`"status":200`), []byte(`"status":201`), 1)
			return f
		}, 14, Altered},
		{"delete one", func(t *testing.T, _ string, f frames) frames {
			i := frameOf(t, f, 6)
			return append(f[:i], f[i+1:]...)
		}, 6, Removed},
		{"delete one and renumber the rest", func(t *testing.T, _ string, f frames) frames {
			i := frameOf(t, f, 6)
			f = append(f[:i], f[i+1:]...)
			shift(f, i, -1)
			return f
		}, 6, Removed},
		{"delete signed tail", func(t *testing.T, _ string, f frames) frames {
			return f[:frameOf(t, f, 11)]
		}, 11, Removed},
		{"insert one, shifting the rest", func(t *testing.T, _ string, f frames) frames {
			i := frameOf(t, f, 6)
			prev := entryAt(t, f, 5).hash
			forged := entryAt(t, f, 6).record
			shift(f, i, +1)
			return slices.Insert(f, i, rawFrame{6, appendEntry(nil, prev, Hash{1}, forged)})
		}, 6, Inserted},
		{"insert one with a valid link, shifting the rest", func(t *testing.T, _ string, f frames) frames {
			i := frameOf(t, f, 6)
			prev := entryAt(t, f, 5).hash
			forged := entryAt(t, f, 6).record // a copy of the old 6
			shift(f, i, +1)
			return slices.Insert(f, i, rawFrame{6, appendEntry(nil, prev, link(prev, recordDigest(forged)), forged)})
		}, 6, Inserted},
		{"insert a copy among the records", func(t *testing.T, _ string, f frames) frames {
			i := frameOf(t, f, 6)
			return slices.Insert(f, i+1, rawFrame{6, bytes.Clone(f[i].entry)})
		}, 7, Inserted},
		{"rewrite the chain consistently from 6", func(t *testing.T, _ string, f frames) frames {
			prev := entryAt(t, f, 5).hash
			for q := uint64(6); q <= n; q++ {
				rec := entryAt(t, f, q).record
				if q == 6 {
					rec = bytes.Replace(rec, []byte(`"app":"app"`), []byte(`"app":"apq"`), 1)
				}
				h := link(prev, recordDigest(rec))
				f[frameOf(t, f, q)].entry = appendEntry(nil, prev, h, rec)
				prev = h
			}
			return f
		}, 5, Altered}, // known only to lie in 5…8: after checkpoint 4, before 8
		{"forge a checkpoint", func(t *testing.T, dir string, f frames) frames {
			editCheckpoint(t, dir, 8, func(c *Checkpoint) { c.Signature[63] ^= 1 })
			return nil
		}, 8, BadSignature},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := chainOf(t, n)
			dir := crashImage(t, s)
			if f := tc.tamper(t, dir, rawFrames(t, dir)); f != nil {
				writeFrames(t, dir, f)
			}
			rep := verify(t, openReadOnly(t, dir))
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

// TestTornTail: a crash cuts the last batch's write short; Open cuts the
// torn bytes off (saving them aside), keeps every whole record, and the
// chain verifies and continues. Damage before the tail is not cut.
func TestTornTail(t *testing.T) {
	s := chainOf(t, 10)
	head := s.Head()
	for name, torn := range map[string]func(b []byte) []byte{
		"short frame": func(b []byte) []byte { return append(b, appendFrame(nil, 11, []byte("xyz"))[:12]...) },
		"bad last frame": func(b []byte) []byte {
			f := appendFrame(nil, 11, []byte("xyz"))
			f[len(f)-1] ^= 1
			return append(b, f...)
		},
		"zeros":            func(b []byte) []byte { return append(b, make([]byte, 300)...) },
		"bad length":       func(b []byte) []byte { return append(b, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0) },
		"half of a header": func(b []byte) []byte { return append(b, 0, 0, 1) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := crashImage(t, s)
			seg := segFiles(t, dir)[0]
			b, _ := os.ReadFile(seg)
			os.WriteFile(seg, torn(b), 0o644)
			r := openStore(t, testOptions(dir))
			defer r.Close()
			if r.Head() != head {
				t.Fatalf("head %+v, want %+v", r.Head(), head)
			}
			if name == "zeros" {
				// Zeros after the frames are not a torn tail but unused
				// space, as in a prepared segment: kept, then overwritten.
				if saved, _ := filepath.Glob(seg + ".torn-*"); len(saved) != 0 {
					t.Errorf("zeros saved aside as torn: %v", saved)
				}
			} else {
				if saved, _ := filepath.Glob(seg + ".torn-*"); len(saved) != 1 {
					t.Errorf("torn bytes not saved aside: %v", saved)
				}
				if got, _ := os.ReadFile(seg); !bytes.Equal(got, b) {
					t.Errorf("segment not cut back to its good frames: %d bytes, want %d", len(got), len(b))
				}
			}
			call(t, r, 20)
			if v := verify(t, r); !v.OK() || v.Last != head.Seq+2 {
				t.Fatalf("verify: %+v %v", v, v.Problem)
			}
		})
	}
	t.Run("a bad frame before good ones is kept", func(t *testing.T) {
		dir := crashImage(t, s)
		seg := segFiles(t, dir)[0]
		b, _ := os.ReadFile(seg)
		f := rawFrames(t, dir)
		at := bytes.Index(b, f[frameOf(t, f, 9)].entry)
		b[at+100] ^= 1
		os.WriteFile(seg, b, 0o644)
		r := openReadOnly(t, dir)
		if v := verify(t, r); v.Problem == nil || v.Problem.Seq != 9 || v.Problem.Kind != Altered {
			t.Fatalf("verify: %+v %v", v, v.Problem)
		}
		if _, err := r.Get(context.Background(), 9); err == nil {
			t.Error("Get returned a record whose frame is damaged")
		}
		if _, err := r.Get(context.Background(), 10); err != nil {
			t.Errorf("Get of the record after it: %v", err)
		}
	})
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
