package audit

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/audit/internal/termindex"
)

// indexCheckStore makes n calls into a store in a fresh directory and
// closes it (its index flushed into run files).
func indexCheckStore(t *testing.T, n int) (Options, uint64) {
	t.Helper()
	opt := testOptions(t.TempDir())
	fillStore(t, opt, 0, n)
	return opt, uint64(2 * n)
}

// forgeIndex rewrites dir's index the way someone who knows the run format
// would: every record's pairs, valid checksums, edited by edit (which may
// drop or add terms of a record).
func forgeIndex(t *testing.T, opt Options, edit func(r *Record, terms []uint64) []uint64) {
	t.Helper()
	s := openStore(t, Options{Dir: opt.Dir, SubjectKeys: opt.SubjectKeys, Logger: quietLogger})
	head := s.Head().Seq
	recs := map[uint64]Record{}
	for seq := uint64(1); seq <= head; seq++ {
		e, err := s.Get(context.Background(), seq)
		if err != nil {
			t.Fatal(err)
		}
		recs[seq] = e.Record
	}
	s.Close()
	dir := filepath.Join(opt.Dir, "index")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	x, err := termindex.Open(termindex.Options{Dir: dir, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= head; seq++ {
		r := recs[seq]
		x.Add(seq, edit(&r, indexTerms(&r))...)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
}

func verifyIndex(t *testing.T, s *Store) IndexReport {
	t.Helper()
	rep, err := VerifyIndex(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestVerifyIndex: a run file edited with valid checksums — a record's
// subject dropped (it vanishes from the citizen view; Verify, which does
// not read the index, passes), or a subject added to another record — is
// found, and the range named holds the edited record; an index rebuilt
// from the log (or forged unchanged) passes, read-only and writable.
func TestVerifyIndex(t *testing.T) {
	const calls, victim = 40, 31 // the request record of call 15
	for _, tc := range []struct {
		name string
		edit func(r *Record, terms []uint64) []uint64
		ok   bool
	}{
		{"unchanged", func(_ *Record, ts []uint64) []uint64 { return ts }, true},
		{"a subject dropped", func(r *Record, ts []uint64) []uint64 {
			if r.Seq == victim {
				return slices.DeleteFunc(ts, func(x uint64) bool { return x == termOf(fSubject, r.Subject) })
			}
			return ts
		}, false},
		{"a subject added", func(r *Record, ts []uint64) []uint64 {
			if r.Seq == victim {
				return append(ts, termOf(fSubject, "somebody else"))
			}
			return ts
		}, false},
		{"pairs duplicated", func(_ *Record, ts []uint64) []uint64 { return append(ts, ts...) }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt, head := indexCheckStore(t, calls)
			forgeIndex(t, opt, tc.edit)
			for _, writable := range []bool{false, true} {
				o := opt
				if !writable {
					o.Signer = nil
				}
				s := openStore(t, o)
				if v := verify(t, s); !v.OK() {
					t.Fatalf("verify: %v", v.Problem)
				}
				page, err := s.Query(context.Background(), Query{Subject: request((victim - 1) / 2).Subject, Limit: 100})
				if err != nil {
					t.Fatal(err)
				}
				found := slices.ContainsFunc(page.Entries, func(e Entry) bool { return e.Seq == victim })
				if found == strings.Contains(tc.name, "dropped") {
					t.Errorf("record %d found by its subject: %v (the edit hides it: %v)", victim, found, !found)
				}
				rep := verifyIndex(t, s)
				if rep.From != 1 || rep.Through != head || rep.Pairs == 0 {
					t.Errorf("checked %+v, want records 1–%d", rep, head)
				}
				if rep.OK() != tc.ok {
					t.Fatalf("writable %v: %+v, want ok %v", writable, rep, tc.ok)
				}
				if m := rep.Mismatch; m != nil && (m.From > victim || m.Through < victim) {
					t.Errorf("mismatch %+v does not hold record %d", *m, victim)
				}
				s.Close()
			}
		})
	}
	t.Run("rebuilt", func(t *testing.T) {
		opt, _ := indexCheckStore(t, calls)
		forgeIndex(t, opt, func(r *Record, ts []uint64) []uint64 { // every subject gone
			return slices.DeleteFunc(ts, func(x uint64) bool { return x == termOf(fSubject, r.Subject) })
		})
		s := openStore(t, opt)
		if rep := verifyIndex(t, s); rep.OK() || rep.Mismatch.From != 1 {
			t.Fatalf("an index without subjects: %+v", rep)
		}
		s.Close()
		if err := os.RemoveAll(filepath.Join(opt.Dir, "index")); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, opt) // rebuilds it from the log
		defer s.Close()
		if err := s.idx.Flush(); err != nil {
			t.Fatal(err)
		}
		if rep := verifyIndex(t, s); !rep.OK() || rep.Through != 2*calls {
			t.Fatalf("the rebuilt index: %+v", rep)
		}
	})
}

// TestVerifyIndexLiveAndPruned: beside a writing store, with records
// redacted and deleted by retention, the index matches; records only in
// memory are left out; a read-only store that had to rebuild its index
// apart says so.
func TestVerifyIndexLiveAndPruned(t *testing.T) {
	opt := testOptions(t.TempDir())
	opt.Services = map[string]Policy{"svc0": {Retention: time.Millisecond}}
	opt.IndexFlushEntries = 64
	s := openStore(t, opt)
	defer s.Close()
	for i := range 60 {
		call(t, s, i)
	}
	time.Sleep(5 * time.Millisecond)
	p, err := s.Prune(context.Background(), time.Now())
	if err != nil || p.Deleted == 0 || p.Redacted == 0 {
		t.Fatalf("prune: %+v %v", p, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 60; i < 200; i++ {
			call(t, s, i)
		}
	}()
	for range 5 {
		rep := verifyIndex(t, s)
		if !rep.OK() || rep.From <= 1 || rep.Through > s.Head().Seq {
			t.Fatalf("beside the writer: %+v", rep)
		}
	}
	<-done
	if rep := verifyIndex(t, s); !rep.OK() || rep.Through > s.idx.Durable() {
		t.Fatalf("after: %+v (durable %d): pairs only in memory are not checked", rep, s.idx.Durable())
	}
	s.Close()

	if err := os.RemoveAll(filepath.Join(opt.Dir, "index")); err != nil {
		t.Fatal(err)
	}
	ro := opt
	ro.Signer = nil
	r := openStore(t, ro) // far behind: rebuilt in a scratch directory
	defer r.Close()
	if rep := verifyIndex(t, r); !rep.OK() || rep.From <= rep.Through {
		t.Fatalf("read-only, no index in the directory: %+v, want nothing checked", rep)
	}
}

// TestVerifyIndexApart: a read-only store whose directory's index is far
// behind its log works on one rebuilt apart; VerifyIndex checks the
// directory's all the same, and finds a subject dropped from it.
func TestVerifyIndexApart(t *testing.T) {
	const victim = 7
	opt, _ := indexCheckStore(t, 40)
	forgeIndex(t, opt, func(r *Record, ts []uint64) []uint64 {
		switch {
		case r.Seq > 10:
			return nil // the index's files answer for records 1–10 only
		case r.Seq == victim:
			return slices.DeleteFunc(ts, func(x uint64) bool { return x == termOf(fSubject, r.Subject) })
		}
		return ts
	})
	opt.Signer, opt.IndexFlushEntries = nil, 64 // read-only; 70 records behind is far
	s := openStore(t, opt)
	defer s.Close()
	if !s.idxApart {
		t.Fatal("the index was not rebuilt apart")
	}
	rep := verifyIndex(t, s)
	if rep.From != 1 || rep.Through != 10 || rep.OK() || rep.Mismatch.From > victim || rep.Mismatch.Through < victim {
		t.Fatalf("%+v, want records 1–10 checked and record %d named", rep, victim)
	}
}
