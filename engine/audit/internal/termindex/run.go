package termindex

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Run file layout (all integers big-endian):
//
//	header  64 bytes: magic "FSBTIDX\x00", version u16, flags u16, blockEntries u32,
//	        count u64, minSeq u64, maxSeq u64, indexCRC u32, 16 zero bytes,
//	        headerCRC u32 (CRC-32C of bytes 0..59)
//	data    count entries of 16 bytes (term u64, seq u64), strictly increasing by
//	        (term, seq), in blocks of blockEntries entries (the last one may be short)
//	index   one 20-byte fence per block: first term u64, first seq u64, CRC-32C of
//	        the block's bytes u32
//
// The file size is exactly 64 + 16*count + 20*blocks. Open reads the header and the
// index only; every block read checks its CRC, so a store of 10^9 pairs opens without
// reading 16 GB and still never returns a corrupt block.
const (
	headerSize   = 64
	entrySize    = 16
	fenceSize    = 20
	runVersion   = 1
	flagMerged   = 1
	runMagic     = "FSBTIDX\x00"
	runSuffix    = ".run"
	tmpSuffix    = ".tmp"
	maxBlockSize = 1 << 16 // entries per block, upper bound accepted by the decoder

	// defaultBlockEntries: 256 entries = 4 KiB per block read, 20 bytes of fence in
	// memory per 4 KiB of run (0.5%); see README for the measurements.
	defaultBlockEntries = 256
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrCorrupt is wrapped by every error about a file that fails its checks (CRC,
// size, order). The index is derived data: a caller may delete Dir and rebuild.
var ErrCorrupt = errors.New("termindex: corrupt file")

type pair struct{ term, seq uint64 }

func (a pair) less(b pair) bool {
	return a.term < b.term || (a.term == b.term && a.seq < b.seq)
}

// runName is what a run's file name carries: the seq range it covers (for a merge,
// the union of its inputs' ranges) and a generation, unique within the directory.
type runName struct{ lo, hi, gen uint64 }

func (n runName) String() string {
	return fmt.Sprintf("%016x-%016x-%016x%s", n.lo, n.hi, n.gen, runSuffix)
}

func parseRunName(s string) (runName, bool) {
	if len(s) != 16*3+2+len(runSuffix) || !strings.HasSuffix(s, runSuffix) || s[16] != '-' || s[33] != '-' {
		return runName{}, false
	}
	var n runName
	var err error
	for i, p := range []*uint64{&n.lo, &n.hi, &n.gen} {
		if *p, err = strconv.ParseUint(s[i*17:i*17+16], 16, 64); err != nil {
			return runName{}, false
		}
	}
	return n, n.lo <= n.hi
}

// contains reports whether n's range holds m's.
func (n runName) contains(m runName) bool { return n.lo <= m.lo && m.hi <= n.hi }

// run is one immutable run file, open for reading. Index, iterators and merges each
// hold a reference; the file is closed (and deleted when obsolete) at the last unref.
type run struct {
	path         string
	name         runName
	merged       bool
	f            *os.File
	count        uint64
	minSeq       uint64
	maxSeq       uint64
	blockEntries int
	fTerm, fSeq  []uint64
	fCRC         []uint32

	refs     atomic.Int64
	obsolete atomic.Bool // delete the file at the last unref
	merging  bool        // guarded by Index.mu
}

func (r *run) blocks() int { return len(r.fCRC) }

func (r *run) unref() {
	if r.refs.Add(-1) != 0 {
		return
	}
	r.f.Close()
	if r.obsolete.Load() {
		os.Remove(r.path)
	}
}

// fenceLE reports whether block b's first entry is ≤ (term, seq).
func (r *run) fenceLE(b int, term, seq uint64) bool {
	return r.fTerm[b] < term || (r.fTerm[b] == term && r.fSeq[b] <= seq)
}

// lastBlockLE returns the last block whose first entry is ≤ (term, seq), or -1.
func (r *run) lastBlockLE(term, seq uint64) int {
	lo, hi := 0, r.blocks() // invariant: blocks < lo are ≤, blocks ≥ hi are >
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if r.fenceLE(m, term, seq) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo - 1
}

var blockPool = sync.Pool{New: func() any { b := make([]byte, defaultBlockEntries*entrySize); return &b }}

func getBlockBuf(entries int) *[]byte {
	p := blockPool.Get().(*[]byte)
	if cap(*p) < entries*entrySize {
		b := make([]byte, entries*entrySize)
		p = &b
	}
	return p
}

// readBlock reads block b into buf, checks its CRC and its order, and returns the
// block's bytes (a whole number of entries).
func (r *run) readBlock(b int, buf []byte) ([]byte, error) {
	n := r.blockEntriesAt(b)
	data := buf[:n*entrySize]
	off := int64(headerSize) + int64(b)*int64(r.blockEntries)*entrySize
	if _, err := r.f.ReadAt(data, off); err != nil {
		return nil, fmt.Errorf("termindex: read %s block %d: %w", r.path, b, err)
	}
	return data, r.checkBlock(b, data)
}

// checkBlock checks block b's CRC, its first entry against its fence, the
// order and seq range of its entries, and that its last entry comes before
// the next block's fence: blocks that overlap would hide entries from the
// fence search (Seqs) while a scan still saw them all.
func (r *run) checkBlock(b int, data []byte) error {
	if crc32.Checksum(data, castagnoli) != r.fCRC[b] {
		return fmt.Errorf("termindex: %s block %d: CRC mismatch: %w", r.path, b, ErrCorrupt)
	}
	prev := pair{term: r.fTerm[b], seq: r.fSeq[b]}
	if entryAt(data, 0) != prev {
		return fmt.Errorf("termindex: %s block %d: first entry differs from its fence: %w", r.path, b, ErrCorrupt)
	}
	for i := 0; i < len(data)/entrySize; i++ {
		e := entryAt(data, i)
		if (i > 0 && !prev.less(e)) || e.seq < r.minSeq || e.seq > r.maxSeq {
			return fmt.Errorf("termindex: %s block %d entry %d out of order or range: %w", r.path, b, i, ErrCorrupt)
		}
		prev = e
	}
	if b+1 < r.blocks() && !prev.less(pair{term: r.fTerm[b+1], seq: r.fSeq[b+1]}) {
		return fmt.Errorf("termindex: %s block %d overlaps block %d: %w", r.path, b, b+1, ErrCorrupt)
	}
	return nil
}

// blockEntriesAt returns the number of entries in block b.
func (r *run) blockEntriesAt(b int) int {
	if rest := r.count - uint64(b)*uint64(r.blockEntries); rest < uint64(r.blockEntries) {
		return int(rest)
	}
	return r.blockEntries
}

func entryAt(data []byte, i int) pair {
	return pair{binary.BigEndian.Uint64(data[i*entrySize:]), binary.BigEndian.Uint64(data[i*entrySize+8:])}
}

// openRun opens and checks a run file: header, size and index. Blocks are checked
// when read.
func openRun(path string) (*run, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("termindex: %w", err)
	}
	r, err := decodeRun(f, path)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func decodeRun(f *os.File, path string) (*run, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("termindex: %s: %s: %w", path, fmt.Sprintf(format, a...), ErrCorrupt)
	}
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("termindex: %w", err)
	}
	size := st.Size()
	var h [headerSize]byte
	if size < headerSize {
		return nil, bad("%d bytes, shorter than a header", size)
	}
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("termindex: read %s: %w", path, err)
	}
	if string(h[:8]) != runMagic {
		return nil, bad("bad magic")
	}
	if crc32.Checksum(h[:60], castagnoli) != binary.BigEndian.Uint32(h[60:]) {
		return nil, bad("header CRC mismatch")
	}
	if v := binary.BigEndian.Uint16(h[8:]); v != runVersion {
		return nil, bad("version %d, want %d", v, runVersion)
	}
	r := &run{
		path:         path,
		f:            f,
		merged:       binary.BigEndian.Uint16(h[10:])&flagMerged != 0,
		blockEntries: int(binary.BigEndian.Uint32(h[12:])),
		count:        binary.BigEndian.Uint64(h[16:]),
		minSeq:       binary.BigEndian.Uint64(h[24:]),
		maxSeq:       binary.BigEndian.Uint64(h[32:]),
	}
	if r.blockEntries < 1 || r.blockEntries > maxBlockSize {
		return nil, bad("block of %d entries", r.blockEntries)
	}
	if r.count == 0 || r.minSeq > r.maxSeq {
		return nil, bad("%d entries, seqs %d..%d", r.count, r.minSeq, r.maxSeq)
	}
	if r.count > uint64(size)/entrySize {
		return nil, bad("%d entries in %d bytes", r.count, size)
	}
	nb := (r.count + uint64(r.blockEntries) - 1) / uint64(r.blockEntries)
	if want := uint64(headerSize) + r.count*entrySize + nb*fenceSize; uint64(size) != want {
		return nil, bad("%d bytes, want %d", size, want)
	}
	idx := make([]byte, nb*fenceSize)
	if _, err := f.ReadAt(idx, headerSize+int64(r.count)*entrySize); err != nil {
		return nil, fmt.Errorf("termindex: read %s: %w", path, err)
	}
	if crc32.Checksum(idx, castagnoli) != binary.BigEndian.Uint32(h[40:]) {
		return nil, bad("index CRC mismatch")
	}
	r.fTerm = make([]uint64, nb)
	r.fSeq = make([]uint64, nb)
	r.fCRC = make([]uint32, nb)
	for b := range r.fCRC {
		p := idx[b*fenceSize:]
		r.fTerm[b] = binary.BigEndian.Uint64(p)
		r.fSeq[b] = binary.BigEndian.Uint64(p[8:])
		r.fCRC[b] = binary.BigEndian.Uint32(p[16:])
		if b > 0 && !(pair{r.fTerm[b-1], r.fSeq[b-1]}).less(pair{r.fTerm[b], r.fSeq[b]}) {
			return nil, bad("fences out of order at block %d", b)
		}
		if r.fSeq[b] < r.minSeq || r.fSeq[b] > r.maxSeq {
			return nil, bad("fence %d seq out of range", b)
		}
	}
	r.refs.Store(1)
	return r, nil
}

// runWriter writes a run file under a temporary name; finish syncs it and renames it.
type runWriter struct {
	path, tmp    string
	f            *os.File
	bw           *bufio.Writer
	blockEntries int
	block        []byte
	n            int // entries in block
	count        uint64
	minSeq       uint64
	maxSeq       uint64
	fences       []byte
	last         pair
	err          error
}

func newRunWriter(dir string, name runName, blockEntries int) (*runWriter, error) {
	path := filepath.Join(dir, name.String())
	w := &runWriter{path: path, tmp: path + tmpSuffix, blockEntries: blockEntries,
		block: make([]byte, 0, blockEntries*entrySize), minSeq: ^uint64(0)}
	f, err := os.OpenFile(w.tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("termindex: %w", err)
	}
	w.f = f
	w.bw = bufio.NewWriterSize(f, 256<<10)
	var zero [headerSize]byte
	w.bw.Write(zero[:])
	return w, nil
}

// add appends p, which must be ≥ the last pair added; an equal pair is dropped.
func (w *runWriter) add(p pair) {
	if w.count > 0 || w.n > 0 {
		if p == w.last {
			return
		}
		if !w.last.less(p) {
			panic("termindex: run entries out of order")
		}
	}
	w.last = p
	w.block = binary.BigEndian.AppendUint64(w.block, p.term)
	w.block = binary.BigEndian.AppendUint64(w.block, p.seq)
	w.n++
	w.minSeq = min(w.minSeq, p.seq)
	w.maxSeq = max(w.maxSeq, p.seq)
	if w.n == w.blockEntries {
		w.endBlock()
	}
}

func (w *runWriter) endBlock() {
	if w.n == 0 {
		return
	}
	w.fences = append(w.fences, w.block[:entrySize]...)
	w.fences = binary.BigEndian.AppendUint32(w.fences, crc32.Checksum(w.block, castagnoli))
	if _, err := w.bw.Write(w.block); err != nil && w.err == nil {
		w.err = err
	}
	w.count += uint64(w.n)
	w.n = 0
	w.block = w.block[:0]
}

func (w *runWriter) entries() uint64 { return w.count + uint64(w.n) }

func (w *runWriter) abort() {
	w.f.Close()
	os.Remove(w.tmp)
}

// finish writes the index and header, syncs the file, and leaves it under its
// temporary name; commit renames it. It returns nil, nil for an empty run.
func (w *runWriter) finish(merged bool) (*run, error) {
	w.endBlock()
	if w.count == 0 {
		w.abort()
		return nil, nil
	}
	w.bw.Write(w.fences)
	err := w.bw.Flush()
	if w.err != nil {
		err = w.err
	}
	var h [headerSize]byte
	copy(h[:], runMagic)
	binary.BigEndian.PutUint16(h[8:], runVersion)
	if merged {
		binary.BigEndian.PutUint16(h[10:], flagMerged)
	}
	binary.BigEndian.PutUint32(h[12:], uint32(w.blockEntries))
	binary.BigEndian.PutUint64(h[16:], w.count)
	binary.BigEndian.PutUint64(h[24:], w.minSeq)
	binary.BigEndian.PutUint64(h[32:], w.maxSeq)
	binary.BigEndian.PutUint32(h[40:], crc32.Checksum(w.fences, castagnoli))
	binary.BigEndian.PutUint32(h[60:], crc32.Checksum(h[:60], castagnoli))
	if err == nil {
		_, err = w.f.WriteAt(h[:], 0)
	}
	if err == nil {
		err = w.f.Sync()
	}
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("termindex: write %s: %w", w.tmp, err)
	}
	nb := len(w.fences) / fenceSize
	r := &run{path: w.path, f: w.f, merged: merged, count: w.count, minSeq: w.minSeq, maxSeq: w.maxSeq,
		blockEntries: w.blockEntries, fTerm: make([]uint64, nb), fSeq: make([]uint64, nb), fCRC: make([]uint32, nb)}
	for b := 0; b < nb; b++ {
		p := w.fences[b*fenceSize:]
		r.fTerm[b] = binary.BigEndian.Uint64(p)
		r.fSeq[b] = binary.BigEndian.Uint64(p[8:])
		r.fCRC[b] = binary.BigEndian.Uint32(p[16:])
	}
	r.refs.Store(1)
	return r, nil
}

// commit renames the synced temporary file to its final name and syncs the directory.
func (w *runWriter) commit(r *run) error {
	if err := os.Rename(w.tmp, w.path); err != nil {
		w.abort()
		return fmt.Errorf("termindex: %w", err)
	}
	if err := syncDir(filepath.Dir(w.path)); err != nil {
		// The rename may or may not survive a crash; either is consistent, but
		// the run cannot be counted as durable.
		r.f.Close()
		os.Remove(w.path)
		return err
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("termindex: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("termindex: sync %s: %w", dir, err)
	}
	return nil
}

// scanner reads a whole run in order, for merges: up to scanBytes per read,
// every block checked, decoded into pairs.
type scanner struct {
	r   *run
	b   int // next block to read
	buf []byte
	ps  []pair
	pos int
}

const scanBytes = 256 << 10

func (s *scanner) next() (pair, bool, error) {
	if s.pos == len(s.ps) {
		if err := s.fill(); err != nil || len(s.ps) == 0 {
			return pair{}, false, err
		}
	}
	p := s.ps[s.pos]
	s.pos++
	return p, true, nil
}

func (s *scanner) fill() error {
	s.ps, s.pos = s.ps[:0], 0
	if s.b == s.r.blocks() {
		return nil
	}
	nb := max(1, min(scanBytes/(s.r.blockEntries*entrySize), s.r.blocks()-s.b))
	entries := 0
	for b := s.b; b < s.b+nb; b++ {
		entries += s.r.blockEntriesAt(b)
	}
	if cap(s.buf) < entries*entrySize {
		s.buf = make([]byte, entries*entrySize)
	}
	data := s.buf[:entries*entrySize]
	off := int64(headerSize) + int64(s.b)*int64(s.r.blockEntries)*entrySize
	if _, err := s.r.f.ReadAt(data, off); err != nil {
		return fmt.Errorf("termindex: read %s block %d: %w", s.r.path, s.b, err)
	}
	for b := s.b; b < s.b+nb; b++ {
		n := s.r.blockEntriesAt(b) * entrySize
		if err := s.r.checkBlock(b, data[:n]); err != nil {
			return err
		}
		for i := 0; i < n; i += entrySize {
			s.ps = append(s.ps, pair{binary.BigEndian.Uint64(data[i:]), binary.BigEndian.Uint64(data[i+8:])})
		}
		data = data[n:]
	}
	s.b += nb
	return nil
}
