package termindex

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// model is the plain-map reference the index is compared with, plus the caller's
// log (to re-add after a crash).
type model struct {
	pairs  map[uint64]map[uint64]bool // term → seqs
	log    []logEntry
	forget uint64
}

type logEntry struct {
	seq   uint64
	terms []uint64
}

func newModel() *model { return &model{pairs: map[uint64]map[uint64]bool{}} }

func (m *model) add(seq uint64, terms []uint64) {
	m.log = append(m.log, logEntry{seq, slices.Clone(terms)})
	for _, t := range terms {
		if m.pairs[t] == nil {
			m.pairs[t] = map[uint64]bool{}
		}
		m.pairs[t][seq] = true
	}
}

func (m *model) want(term, lo, hi uint64, desc bool) []uint64 {
	lo = max(lo, m.forget)
	var out []uint64
	for s := range m.pairs[term] {
		if s >= lo && s <= hi {
			out = append(out, s)
		}
	}
	slices.Sort(out)
	if desc {
		slices.Reverse(out)
	}
	return out
}

func collect(t testing.TB, it *Iter) []uint64 {
	t.Helper()
	defer it.Close()
	var out []uint64
	for {
		s, ok := it.Next()
		if !ok {
			break
		}
		out = append(out, s)
	}
	if err := it.Err(); err != nil {
		t.Fatalf("iterator: %v", err)
	}
	return out
}

// check compares every term of the model (and one absent term) over random ranges.
func check(t *testing.T, x *Index, m *model, rng *rand.Rand, maxSeq uint64) {
	t.Helper()
	terms := []uint64{1 << 60}
	for term := range m.pairs {
		terms = append(terms, term)
	}
	for _, term := range terms {
		for _, desc := range []bool{false, true} {
			lo, hi := uint64(0), ^uint64(0)
			if rng.IntN(2) == 0 {
				lo = rng.Uint64N(maxSeq + 2)
				hi = lo + rng.Uint64N(maxSeq+2)
			}
			got, want := collect(t, x.Seqs(term, lo, hi, desc)), m.want(term, lo, hi, desc)
			if !slices.Equal(got, want) {
				t.Fatalf("Seqs(%d, %d, %d, desc=%v) = %v, want %v (stats %+v)", term, lo, hi, desc, got, want, x.Stats())
			}
		}
	}
	checkPairs(t, x, m, rng)
}

// checkPairs: Pairs yields the model's pairs from Forget's bound (or lo)
// through Durable, each once, in (term, seq) order — duplicates across runs
// (re-added after a reopen, merged or not) come once.
func checkPairs(t *testing.T, x *Index, m *model, rng *rand.Rand) {
	t.Helper()
	var got []pair
	lo, hi := uint64(rng.IntN(3)), x.Durable() // a flush may move Durable on meanwhile: Pairs stops at hi
	if err := x.Pairs(lo, hi, func(term, seq uint64) error {
		got = append(got, pair{term, seq})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	lo = max(lo, m.forget)
	var want []pair
	for term, seqs := range m.pairs {
		for seq := range seqs {
			if seq >= lo && seq <= hi {
				want = append(want, pair{term, seq})
			}
		}
	}
	slices.SortFunc(want, func(a, b pair) int { return cmp.Or(cmp.Compare(a.term, b.term), cmp.Compare(a.seq, b.seq)) })
	if !slices.Equal(got, want) {
		t.Fatalf("Pairs [%d, %d]: %d pairs, want %d (stats %+v)", lo, hi, len(got), len(want), x.Stats())
	}
}

var quiet = slog.New(slog.DiscardHandler)

func testOptions(dir string) Options {
	return Options{Dir: dir, FlushEntries: 40, blockEntries: 4, Logger: quiet}
}

func TestModel(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 4} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 99))
			dir := t.TempDir()
			x, err := Open(testOptions(dir))
			if err != nil {
				t.Fatal(err)
			}
			defer func() { x.Close() }()
			m := newModel()
			seq := uint64(0)
			for step := 0; step < 3000; step++ {
				switch r := rng.IntN(1000); {
				case r < 900: // add
					seq += rng.Uint64N(3)
					seq = max(seq, 1)
					terms := make([]uint64, 1+rng.IntN(4))
					for i := range terms {
						terms[i] = rng.Uint64N(30) // duplicates within a call happen
					}
					x.Add(seq, terms...)
					m.add(seq, terms)
				case r < 930:
					if err := x.Flush(); err != nil {
						t.Fatal(err)
					}
					if d := x.Durable(); d != seq {
						t.Fatalf("Durable after Flush = %d, want %d", d, seq)
					}
				case r < 945:
					below := rng.Uint64N(seq + 1)
					if err := x.Forget(below); err != nil {
						t.Fatal(err)
					}
					m.forget = max(m.forget, below)
				case r < 960: // reopen, then re-add a little of what is already there
					if err := x.Close(); err != nil {
						t.Fatal(err)
					}
					if x, err = Open(testOptions(dir)); err != nil {
						t.Fatal(err)
					}
					d := x.Durable()
					if d < seq {
						t.Fatalf("Durable after reopen = %d, want ≥ %d", d, seq)
					}
					for _, e := range m.log {
						if e.seq+3 > d {
							x.Add(e.seq, e.terms...)
						}
					}
				default:
					check(t, x, m, rng, seq)
				}
			}
			check(t, x, m, rng, seq)
			if err := x.Close(); err != nil {
				t.Fatal(err)
			}
			if x, err = Open(testOptions(dir)); err != nil {
				t.Fatal(err)
			}
			check(t, x, m, rng, seq)
			if err := x.quiesce(); err != nil {
				t.Fatal(err)
			}
			// Runs grow by 1.5 at least from newest to oldest, plus a few small ones.
			if s := x.Stats(); float64(s.Runs) > math.Log(float64(s.DiskEntries)/40)/math.Log(1.5)+3 {
				for _, r := range x.runs {
					t.Logf("run %v count %d", r.name, r.count)
				}
				t.Errorf("%d runs for %d pairs: merging does not keep up", s.Runs, s.DiskEntries)
			}
		})
	}
}

// TestPairsLeavesOutMemory: pairs not yet in a run file are not Pairs',
// whatever hi asks for; once flushed they are.
func TestPairsLeavesOutMemory(t *testing.T) {
	x, err := Open(Options{Dir: t.TempDir(), Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	count := func() (n int) {
		if err := x.Pairs(0, ^uint64(0), func(uint64, uint64) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	x.Add(1, 7, 8)
	x.Add(2, 7)
	if n := count(); n != 0 {
		t.Fatalf("%d pairs from memory", n)
	}
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	x.Add(3, 9)
	if n := count(); n != 3 {
		t.Fatalf("%d pairs after the flush, want 3", n)
	}
}

func TestAddPanicsOnDecreasingSeq(t *testing.T) {
	x, err := Open(testOptions(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	x.Add(5, 1)
	x.Add(5, 2)
	defer func() {
		if recover() == nil {
			t.Fatal("Add(4) after Add(5) did not panic")
		}
	}()
	x.Add(4, 1)
}

// TestCrash kills background work at each point of a flush or a merge, leaves
// temporary files behind, reopens, replays the log above Durable, and expects
// exactly the model: nothing lost, nothing doubled.
func TestCrash(t *testing.T) {
	for _, point := range []string{"flush:synced", "flush:renamed", "merge:synced", "merge:renamed"} {
		for hit := int64(1); hit <= 3; hit++ {
			t.Run(fmt.Sprintf("%s#%d", point, hit), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(uint64(hit), 7))
				dir := t.TempDir()
				var n atomic.Int64
				crashed := make(chan struct{})
				opt := testOptions(dir)
				opt.hook = func(p string) bool {
					if p == point && n.Add(1) == hit {
						close(crashed)
						return true
					}
					return false
				}
				x, err := Open(opt)
				if err != nil {
					t.Fatal(err)
				}
				m := newModel()
				seq := uint64(0)
				var before uint64
			adding:
				for i := 0; i < 5000; i++ {
					select {
					case <-crashed:
						break adding
					default:
					}
					seq += 1 + rng.Uint64N(3) // gaps: seqs with no terms, which a memtable still answers for (no false hole)
					terms := []uint64{rng.Uint64N(20), rng.Uint64N(20) + 100, seq + 1000}
					x.Add(seq, terms...)
					m.add(seq, terms)
					if i%97 == 0 {
						x.Flush()
					}
				}
				<-crashed // the hook fired: without it the loop above ran 5000 adds
				before = x.Durable()
				x.abandon()
				// Leftovers of an interrupted write under temporary names.
				os.WriteFile(filepath.Join(dir, runName{1, 9, 999}.String()+tmpSuffix), []byte("half a run"), 0o600)
				os.WriteFile(filepath.Join(dir, forgetFile+tmpSuffix), nil, 0o600)

				reopt := testOptions(dir)
				reopt.noMerge = true // the run list stays as Open left it
				x, err = Open(reopt)
				if err != nil {
					t.Fatal(err)
				}
				defer x.Close()
				ents, _ := os.ReadDir(dir)
				for _, e := range ents {
					if strings.HasSuffix(e.Name(), tmpSuffix) {
						t.Errorf("temporary file %s left after Open", e.Name())
					}
				}
				// The inputs of a merge that was renamed are gone: no pair is on
				// disk twice (this test never adds a pair twice).
				seen := map[pair]bool{}
				var onDisk uint64
				for _, r := range x.runs {
					ps, err := scanRun(r.path)
					if err != nil {
						t.Fatal(err)
					}
					onDisk += uint64(len(ps))
					for _, p := range ps {
						seen[p] = true
					}
				}
				if onDisk != uint64(len(seen)) {
					t.Errorf("%d pairs in runs, %d distinct: a replaced run survived Open", onDisk, len(seen))
				}
				d := x.Durable()
				if d < before {
					t.Fatalf("Durable %d after reopen, was %d before the crash", d, before)
				}
				for _, e := range m.log {
					if e.seq > d {
						x.Add(e.seq, e.terms...)
					}
				}
				check(t, x, m, rng, seq)
			})
		}
	}
}

// TestHammer: one writer, eight readers, a forgetter, flushes and merges going on.
// Readers check that every result is sound (the seq has the term, order is strict)
// and complete (every seq added before the call, above the forget bound, is there).
func TestHammer(t *testing.T) {
	const n = 10000
	mergeDone := make(chan struct{}, 1)
	opt := Options{Dir: t.TempDir(), FlushEntries: 300, blockEntries: 16, Logger: quiet, hook: func(p string) bool {
		if p == "merge:installed" {
			kick(mergeDone)
		}
		return false
	}}
	x, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	var published, forgetting atomic.Uint64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for r := 0; r < 8; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				mod := uint64(7)
				if r%2 == 1 {
					mod = 13
				}
				term := rng.Uint64N(mod) + mod*1000
				s := published.Load()
				lo := s - min(s, 700)
				desc := rng.IntN(2) == 0
				it := x.Seqs(term, lo, s, desc)
				var got []uint64
				for {
					v, ok := it.Next()
					if !ok {
						break
					}
					got = append(got, v)
				}
				it.Close()
				if err := it.Err(); err != nil {
					errs <- err
					return
				}
				fb := forgetting.Load()
				for i, v := range got {
					if v%mod+mod*1000 != term || v > s || (i > 0 && (desc && v >= got[i-1] || !desc && v <= got[i-1])) {
						errs <- fmt.Errorf("term %d: unsound result %v", term, got)
						return
					}
				}
				{
					// complete: every v in [fb, s] with v%mod == term%mod
					want := 0
					for v := max(fb, lo, 1); v <= s; v++ {
						if v%mod+mod*1000 == term {
							want++
						}
					}
					have := 0
					for _, v := range got {
						if v >= fb && v >= lo {
							have++
						}
					}
					if have != want {
						errs <- fmt.Errorf("term %d in [%d, %d]: %d seqs, want %d", term, fb, s, have, want)
						return
					}
				}
			}
		}()
	}
	for seq := uint64(1); seq <= n; seq++ {
		x.Add(seq, seq%7+7000, seq%13+13000, seq+1<<40)
		published.Store(seq)
		if seq%2000 == 0 {
			forgetting.Store(seq - 1500)
			if err := x.Forget(seq - 1500); err != nil {
				t.Fatal(err)
			}
		}
	}
	select { // at least one merge happened while readers ran
	case <-mergeDone:
	case err := <-errs:
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s := x.Stats(); s.Merges == 0 || s.Flushes == 0 {
		t.Fatalf("stats %+v: no flush or no merge", s)
	}
}

// TestIterAcrossMergeAndDelete: iterators opened before a merge and a Forget that
// delete their runs keep returning exactly what they saw; the files go when the
// last iterator closes.
func TestIterAcrossMergeAndDelete(t *testing.T) {
	merged := make(chan struct{}, 1)
	dir := t.TempDir()
	opt := Options{Dir: dir, FlushEntries: 30, blockEntries: 4, Logger: quiet, hook: func(p string) bool {
		if p == "merge:installed" {
			kick(merged)
		}
		return false
	}}
	x, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	seq := uint64(0)
	addRun := func() {
		for i := 0; i < 10; i++ {
			seq++
			x.Add(seq, 1, 2, seq+100)
		}
		if err := x.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		addRun()
	}
	if s := x.Stats(); s.Runs != 3 {
		t.Fatalf("%d runs, want 3", s.Runs)
	}
	asc, desc := x.Seqs(1, 0, ^uint64(0), false), x.Seqs(2, 0, ^uint64(0), true)
	var gotAsc, gotDesc []uint64
	for range 5 {
		a, _ := asc.Next()
		d, _ := desc.Next()
		gotAsc, gotDesc = append(gotAsc, a), append(gotDesc, d)
	}
	addRun() // fourth run: a merge of the four
	<-merged
	if err := x.Forget(seq + 1); err != nil { // the merged run is wholly below: deleted
		t.Fatal(err)
	}
	if s := x.Stats(); s.Runs != 0 {
		t.Fatalf("stats %+v after Forget, want no runs", s)
	}
	gotAsc = append(gotAsc, collect(t, asc)...)
	gotDesc = append(gotDesc, collect(t, desc)...)
	var want []uint64
	for s := uint64(1); s <= 30; s++ {
		want = append(want, s)
	}
	if !slices.Equal(gotAsc, want) {
		t.Errorf("ascending across merge = %v, want %v", gotAsc, want)
	}
	slices.Reverse(want)
	if !slices.Equal(gotDesc, want) {
		t.Errorf("descending across merge = %v, want %v", gotDesc, want)
	}
	if got := collect(t, x.Seqs(1, 0, ^uint64(0), false)); len(got) != 0 {
		t.Errorf("after Forget: %v", got)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), runSuffix) {
			t.Errorf("run %s still on disk after its last iterator closed", e.Name())
		}
	}
}

// TestWriteFailure: a flush that cannot create its file keeps the pairs readable
// in memory, does not advance Durable, and succeeds at the next flush.
func TestWriteFailure(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ix")
	x, err := Open(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	x.Add(1, 7)
	if err := x.Flush(); err != nil {
		t.Fatal(err)
	}
	x.Add(2, 7)
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	err = x.Flush()
	if err := os.Rename(dir+".away", dir); err != nil {
		t.Fatal(err)
	}
	if err == nil {
		t.Fatal("Flush into a missing directory succeeded")
	}
	if d := x.Durable(); d != 1 {
		t.Errorf("Durable = %d after a failed flush, want 1", d)
	}
	if got := collect(t, x.Seqs(7, 0, 10, false)); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("Seqs after failed flush = %v", got)
	}
	if err := x.Flush(); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if d := x.Durable(); d != 2 {
		t.Errorf("Durable = %d after the retry, want 2", d)
	}
	if s := x.Stats(); s.MemEntries != 0 || s.DiskEntries != 2 {
		t.Errorf("stats %+v after the retry", s)
	}
}

// TestReadOnly: a read-only index writes nothing: on a directory it reads
// the runs there and leaves every file (a temporary one included) as it
// is; without a directory it lives in memory. What is added is found until
// Close; Flush and Forget refuse.
func TestReadOnly(t *testing.T) {
	dir := t.TempDir()
	x, err := Open(Options{Dir: dir, FlushEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 10; seq++ {
		x.Add(seq, 7, 100+seq)
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "leftover"+tmpSuffix)
	if err := os.WriteFile(tmp, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	entries := func() []string {
		ents, _ := os.ReadDir(dir)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return names
	}
	before := entries()
	for _, d := range []string{dir, ""} {
		r, err := Open(Options{Dir: d, FlushEntries: 4, ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(11); seq <= 30; seq++ { // several memtables' worth
			r.Add(seq, 7)
		}
		want := 30
		if d == "" {
			want = 20 // nothing read from disk
		}
		if got := collect(t, r.Seqs(7, 0, ^uint64(0), false)); len(got) != want {
			t.Errorf("dir %q: term 7 has %d seqs, want %d: %v", d, len(got), want, got)
		}
		if err := r.Flush(); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Flush: %v", err)
		}
		if err := r.Forget(5); !errors.Is(err, ErrReadOnly) {
			t.Errorf("Forget: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if after := entries(); !slices.Equal(before, after) {
		t.Errorf("a read-only index changed its directory: %v, then %v", before, after)
	}
}
