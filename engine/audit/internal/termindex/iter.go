package termindex

// runSource yields the seqs of one term in one run within [lo, hi].
type runSource struct {
	r       *run
	term    uint64
	lo, hi  uint64
	desc    bool
	bufp    *[]byte
	data    []byte
	b       int // block in data
	pos     int // next entry in data
	started bool
	done    bool
}

func (s *runSource) load(b int) error {
	if s.bufp == nil {
		s.bufp = getBlockBuf(s.r.blockEntries)
	}
	d, err := s.r.readBlock(b, *s.bufp)
	if err != nil {
		return err
	}
	s.data, s.b = d, b
	return nil
}

// search returns the first index in data whose entry is > (term, seq).
func (s *runSource) search(term, seq uint64) int {
	lo, hi := 0, len(s.data)/entrySize
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		e := entryAt(s.data, m)
		if e.term < term || (e.term == term && e.seq <= seq) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

func (s *runSource) start() error {
	s.started = true
	if s.desc {
		b := s.r.lastBlockLE(s.term, s.hi)
		if b < 0 {
			s.done = true
			return nil
		}
		if err := s.load(b); err != nil {
			return err
		}
		s.pos = s.search(s.term, s.hi) - 1
		return nil
	}
	b := max(s.r.lastBlockLE(s.term, s.lo-1), 0) // lo ≥ 1 always
	if err := s.load(b); err != nil {
		return err
	}
	s.pos = s.search(s.term, s.lo-1)
	return nil
}

func (s *runSource) next() (uint64, bool, error) {
	if !s.started {
		if err := s.start(); err != nil {
			return 0, false, err
		}
	}
	if s.done {
		return 0, false, nil
	}
	n := len(s.data) / entrySize
	if s.desc {
		if s.pos < 0 {
			if s.b == 0 {
				s.done = true
				return 0, false, nil
			}
			if err := s.load(s.b - 1); err != nil {
				return 0, false, err
			}
			s.pos = len(s.data)/entrySize - 1
		}
	} else if s.pos == n {
		if s.b+1 == s.r.blocks() {
			s.done = true
			return 0, false, nil
		}
		if err := s.load(s.b + 1); err != nil {
			return 0, false, err
		}
		s.pos = 0
	}
	e := entryAt(s.data, s.pos)
	if e.term != s.term || e.seq < s.lo || e.seq > s.hi {
		s.done = true
		return 0, false, nil
	}
	if s.desc {
		s.pos--
	} else {
		s.pos++
	}
	return e.seq, true, nil
}

func (s *runSource) release() {
	if s.bufp != nil {
		blockPool.Put(s.bufp)
		s.bufp = nil
	}
	s.data = nil
	s.r.unref()
}

// Iter yields the seqs of one term, merged over memory and runs, without
// duplicates. It holds a reference on every run it reads: Close it.
type Iter struct {
	desc   bool
	mem    []memSource
	runs   []runSource
	heads  []uint64 // head of source i: mem first, then runs
	live   []bool
	primed bool
	err    error
	closed bool
}

func (it *Iter) pull(i int) {
	var v uint64
	var ok bool
	if i < len(it.mem) {
		v, ok = it.mem[i].next()
	} else {
		var err error
		v, ok, err = it.runs[i-len(it.mem)].next()
		if err != nil && it.err == nil {
			it.err = err
		}
	}
	it.heads[i], it.live[i] = v, ok
}

// Next returns the next seq, or ok=false at the end or on an error (see Err).
func (it *Iter) Next() (seq uint64, ok bool) {
	if it.closed || it.err != nil {
		return 0, false
	}
	if !it.primed {
		it.primed = true
		k := len(it.mem) + len(it.runs)
		it.heads, it.live = make([]uint64, k), make([]bool, k)
		for i := range k {
			it.pull(i)
		}
	}
	best, found := uint64(0), false
	for i, ok := range it.live {
		if ok && (!found || (it.desc && it.heads[i] > best) || (!it.desc && it.heads[i] < best)) {
			best, found = it.heads[i], true
		}
	}
	if !found {
		return 0, false
	}
	for i, ok := range it.live {
		if ok && it.heads[i] == best {
			it.pull(i)
		}
	}
	if it.err != nil {
		return 0, false
	}
	return best, true
}

// Err returns the error that ended the iteration, if any: a run block that could
// not be read or failed its check (the error names the file).
func (it *Iter) Err() error { return it.err }

// Close releases the runs the iterator holds. It is idempotent.
func (it *Iter) Close() {
	if it.closed {
		return
	}
	it.closed = true
	for i := range it.runs {
		it.runs[i].release()
	}
	it.mem = nil
}
