package termindex

import "slices"

// The memtable is an unsorted tail of about memChunk pairs plus sorted chunks:
// Add appends to the tail; a full tail is sorted into a chunk, and every four
// chunks of one size are merged into one, up to memChunkMax. A lookup binary-
// searches each chunk (≤ ~20 for 2^20 pairs) and scans the tail. A flush merges
// the chunks pairwise. This replaced a hash map of per-term chains, whose cache
// miss per term cost ~190 ns on its own (see README).
const (
	memChunk    = 2048
	memChunkMax = 128 << 10
)

// memtable: only the writer changes it, under Index.mu; readers copy the slice
// headers under Index.mu (read-locked) and then read without it: chunks are never
// modified once published (a merge publishes a new list), and tail elements below
// a captured length never change. A frozen memtable is not modified at all.
type memtable struct {
	chunks [][]pair // each sorted by (term, seq)
	tail   []pair   // in seq order
	n      int
	from   uint64 // it answers for the seqs from here on (lo)
	minSeq uint64
	maxSeq uint64
	frozen bool
}

// newMemtable answers for the seqs from from on: those up to the largest it
// holds when it is frozen, the ones added and the ones that had no terms.
func newMemtable(from uint64) *memtable {
	return &memtable{tail: make([]pair, 0, memChunk), from: from}
}

// lo is the first seq a frozen memtable answers for: from, or lower when it
// holds pairs of seqs below from (re-added after Open, or a seq split by
// Flush).
func (m *memtable) lo() uint64 { return min(m.from, m.minSeq) }

// seal returns the chunk list that results from sorting tail into a chunk and
// merging equal-size chunks. It changes nothing, so the writer can compute it
// outside Index.mu. scratch is the writer's reusable buffer.
func seal(tail []pair, chunks [][]pair, scratch *[]pair) [][]pair {
	c := make([]pair, len(tail))
	copy(c, tail)
	sortByTerm(c, grow(scratch, len(c)))
	out := append(slices.Clip(chunks), c)
	for len(out) >= 4 {
		k := len(out)
		last := out[k-4:]
		n := len(last[0]) + len(last[1]) + len(last[2]) + len(last[3])
		if n > memChunkMax || len(last[3])*2 < len(last[0]) {
			break
		}
		tmp := grow(scratch, n)
		t1 := merge2(last[0], last[1], tmp[:0])
		t2 := merge2(last[2], last[3], tmp[len(t1):len(t1)])
		merged := merge2(t1, t2, make([]pair, 0, n))
		out = append(slices.Clone(out[:k-4]), merged)
	}
	return out
}

func grow(buf *[]pair, n int) []pair {
	if cap(*buf) < n {
		*buf = make([]pair, n)
	}
	return (*buf)[:n]
}

// merge2 appends the merge of sorted a and b to out.
func merge2(a, b, out []pair) []pair {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		if b[j].less(a[i]) {
			out = append(out, b[j])
			j++
		} else {
			out = append(out, a[i])
			i++
		}
	}
	out = append(out, a[i:]...)
	return append(out, b[j:]...)
}

// mergeAll merges sorted slices pairwise, round by round, into bufA and bufB
// (each with room for all pairs), and returns the result.
func mergeAll(srcs [][]pair, bufA, bufB []pair) []pair {
	if len(srcs) == 0 {
		return nil
	}
	cur, dst, other := srcs, bufA, bufB
	for len(cur) > 1 {
		next := make([][]pair, 0, (len(cur)+1)/2)
		off := 0
		for i := 0; i < len(cur); i += 2 {
			var seg []pair
			if i+1 == len(cur) {
				seg = append(dst[off:off], cur[i]...)
			} else {
				seg = merge2(cur[i], cur[i+1], dst[off:off])
			}
			next = append(next, seg)
			off += len(seg)
		}
		cur, dst, other = next, other, dst
	}
	return cur[0]
}

// sortByTerm sorts a by term, keeping the order of equal terms (pairs were added
// in seq order, so the result is sorted by (term, seq)); tmp has len(a).
func sortByTerm(a, tmp []pair) {
	if out := sortedByTerm(a, tmp, a); len(out) > 0 && &out[0] != &a[0] {
		copy(a, out)
	}
}

// sortedByTerm returns src's pairs sorted stably by term, in bufA or bufB (each
// of len(src)); src is only read. LSD radix sort, 8-bit digits: one pass counts
// all digits, then up to eight streaming scatter passes (a digit all pairs share
// is skipped). 11-bit digits measured best (README).
const (
	radixBits   = 11
	radixMask   = 1<<radixBits - 1
	radixPasses = (64 + radixBits - 1) / radixBits
)

func sortedByTerm(src, bufA, bufB []pair) []pair {
	n := len(src)
	if n == 0 {
		return bufA[:0]
	}
	var count [radixPasses][1 << radixBits]int32
	for i := range src {
		t := src[i].term
		for d := range radixPasses {
			count[d][(t>>(radixBits*d))&radixMask]++
		}
	}
	from, to, spare := src, bufA[:n], bufB[:n]
	for d := range radixPasses {
		c := &count[d]
		shift := uint(radixBits * d)
		if int(c[(from[0].term>>shift)&radixMask]) == n {
			continue
		}
		sum := int32(0)
		for i, k := range c {
			c[i] = sum
			sum += k
		}
		for i := range from {
			b := (from[i].term >> shift) & radixMask
			to[c[b]] = from[i]
			c[b]++
		}
		if &from[0] == &src[0] {
			from, to = to, spare
		} else {
			from, to = to, from
		}
	}
	return from
}

// termRange returns the pairs of term with seq in [lo, hi] (lo ≥ 1) in a sorted chunk.
func termRange(c []pair, term, lo, hi uint64) []pair {
	return c[upperBound(c, term, lo-1):upperBound(c, term, hi)]
}

// upperBound returns the first index of c whose pair is > (term, seq).
func upperBound(c []pair, term, seq uint64) int {
	lo, hi := 0, len(c)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c[m].term < term || (c[m].term == term && c[m].seq <= seq) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// memSources appends a source per chunk holding term in [lo, hi], and one for
// the tail's matches.
func memSources(dst []memSource, chunks [][]pair, tail []pair, term, lo, hi uint64, desc bool) []memSource {
	for _, c := range chunks {
		if r := termRange(c, term, lo, hi); len(r) > 0 {
			dst = append(dst, memSource{ps: r, desc: desc})
		}
	}
	var t []pair
	for _, p := range tail {
		if p.term == term && p.seq >= lo && p.seq <= hi {
			t = append(t, p)
		}
	}
	if len(t) > 0 {
		dst = append(dst, memSource{ps: t, desc: desc})
	}
	return dst
}

// memSource yields the seqs of sorted pairs of one term, without duplicates.
type memSource struct {
	ps   []pair
	desc bool
	last uint64
}

func (s *memSource) next() (uint64, bool) {
	for len(s.ps) > 0 {
		var v uint64
		if s.desc {
			v = s.ps[len(s.ps)-1].seq
			s.ps = s.ps[:len(s.ps)-1]
		} else {
			v = s.ps[0].seq
			s.ps = s.ps[1:]
		}
		if v != s.last {
			s.last = v
			return v, true
		}
	}
	return 0, false
}
