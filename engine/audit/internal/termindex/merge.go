package termindex

import (
	"errors"
	"slices"
)

var errStopped = errors.New("termindex: stopped")

// A window of at least 3 adjacent runs is merged when it holds at least 2.75 times
// as many pairs as its largest run (3 runs of nearly equal size qualify). The
// output is then at least 2.75 times each input, so a pair is rewritten at most
// log_2.75(n/FlushEntries) times (7 for 10^9 pairs flushed by 10^6); and when no
// window qualifies, run sizes grow by a factor ≥ ~1.5 from the newest to the
// oldest, so there are O(log n) runs. A small run (from Flush, or shrunk by
// Forget) is absorbed by its neighbours instead of sitting between size classes.
func qualifies(runs, sum, big uint64) bool { return runs >= 3 && 4*sum >= 11*big }

// pickMergeLocked returns the qualifying window with the fewest pairs (the newest
// on a tie), plus every run whose range lies inside the window's (so that the
// merged run replaces every run it covers: Open relies on it), or nil.
func (x *Index) pickMergeLocked() []*run {
	bi, bj, best := -1, -1, uint64(0)
	for i := len(x.runs) - 1; i >= 0; i-- {
		var sum, big uint64
		for j := i; j < len(x.runs); j++ {
			r := x.runs[j]
			if r.merging {
				break
			}
			sum += r.count
			big = max(big, r.count)
			if qualifies(uint64(j-i+1), sum, big) && (bi < 0 || sum < best) {
				bi, bj, best = i, j, sum
			}
			if bi >= 0 && sum >= best {
				break
			}
		}
	}
	if bi < 0 {
		return nil
	}
	// An older neighbour smaller than the window's largest run would be stranded
	// between bigger runs: take it along (it costs less than the window).
	var big uint64
	for _, r := range x.runs[bi : bj+1] {
		big = max(big, r.count)
	}
	for bi > 0 && !x.runs[bi-1].merging && x.runs[bi-1].count <= big {
		bi--
	}
	group := slices.Clone(x.runs[bi : bj+1])
	u := unionName(group)
	// A memtable being written has a generation older than this merge's: if its
	// range lay inside the merge's, Open would take it for a replaced input (a
	// seq split by Flush can put it there). Wait for it.
	for _, m := range x.frozen {
		if m.lo() <= u.hi && m.maxSeq >= u.lo {
			return nil
		}
	}
	for _, r := range x.runs {
		if !slices.Contains(group, r) && u.contains(r.name) {
			if r.merging {
				return nil
			}
			group = append(group, r)
		}
	}
	return group
}

func unionName(rs []*run) runName {
	u := rs[0].name
	for _, r := range rs[1:] {
		u.lo, u.hi = min(u.lo, r.name.lo), max(u.hi, r.name.hi)
	}
	return u
}

func (x *Index) mergeLoop() {
	defer x.wg.Done()
	for {
		select {
		case <-x.stop:
			return
		case <-x.mergeKick:
		}
		for {
			did, err := x.mergeOnce()
			if err != nil {
				if !errors.Is(err, errStopped) && !errors.Is(err, errCrashed) {
					x.log.Error("termindex: merge failed; runs kept as they are", "err", err)
				}
				break
			}
			if !did {
				break
			}
		}
	}
}

// mergeOnce merges one group of runs, if there is one.
func (x *Index) mergeOnce() (bool, error) {
	x.mergeMu.Lock()
	defer x.mergeMu.Unlock()
	x.mu.Lock()
	if x.crashed || x.closed || x.noMerge {
		x.mu.Unlock()
		return false, nil
	}
	group := x.pickMergeLocked()
	if group == nil {
		x.mu.Unlock()
		return false, nil
	}
	for _, r := range group {
		r.merging = true
		r.refs.Add(1)
	}
	below := x.forget
	name := unionName(group)
	name.gen = x.nextGen
	x.nextGen++
	x.mu.Unlock()

	out, err := x.mergeRuns(group, name, below)

	x.mu.Lock()
	for _, r := range group {
		r.merging = false
	}
	if err != nil {
		x.mu.Unlock()
		for _, r := range group {
			r.unref()
		}
		return false, err
	}
	x.runs = slices.DeleteFunc(x.runs, func(r *run) bool { return slices.Contains(group, r) })
	var dead []*run
	if out != nil {
		out.name = name
		if out.maxSeq < x.forget {
			dead = append(dead, out)
		} else {
			x.insertRunLocked(out)
		}
	}
	x.merges++
	x.mu.Unlock()
	for _, r := range group {
		r.obsolete.Store(true)
		r.unref() // the index's reference
		r.unref() // the merge's
	}
	for _, r := range dead {
		r.obsolete.Store(true)
		r.unref()
	}
	if x.hook != nil {
		x.hook("merge:installed") // tests wait for merges with it
	}
	return true, nil
}

// mergeRuns writes the k-way merge of group, without duplicates and without pairs
// below `below`, as one run named name.
func (x *Index) mergeRuns(group []*run, name runName, below uint64) (*run, error) {
	w, err := newRunWriter(x.dir, name, x.blockEntries)
	if err != nil {
		return nil, err
	}
	if err := x.mergeScan(group, below, func(p pair) error { w.add(p); return nil }); err != nil {
		w.abort()
		return nil, err
	}
	return x.finishRun(w, true, "merge")
}

// mergeScan calls emit with the pairs of runs whose seq is at least below,
// in (term, seq) order: a k-way merge, so a pair held by several runs comes
// several times in a row. It ends with errStopped when the index closes.
func (x *Index) mergeScan(runs []*run, below uint64, emit func(pair) error) error {
	scans := make([]scanner, len(runs))
	heads := make([]pair, len(runs))
	live := make([]bool, len(runs))
	pull := func(i int) error {
		for {
			p, ok, err := scans[i].next()
			if err != nil || !ok {
				live[i] = false
				return err
			}
			if p.seq >= below {
				heads[i], live[i] = p, true
				return nil
			}
		}
	}
	for i, r := range runs {
		scans[i] = scanner{r: r}
		if err := pull(i); err != nil {
			return err
		}
	}
	for n := 0; ; n++ {
		if n&0xffff == 0 {
			select {
			case <-x.stop:
				return errStopped
			default:
			}
		}
		best := -1
		for i, ok := range live {
			if ok && (best < 0 || heads[i].less(heads[best])) {
				best = i
			}
		}
		if best < 0 {
			return nil
		}
		if err := emit(heads[best]); err != nil {
			return err
		}
		if err := pull(best); err != nil {
			return err
		}
	}
}

// quiesce runs merges until none is due (tests and benchmarks).
func (x *Index) quiesce() error {
	for {
		did, err := x.mergeOnce()
		if err != nil || !did {
			return err
		}
	}
}
