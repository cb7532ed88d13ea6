package audit

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/openfsb/fsb/engine/audit/internal/termindex"
)

// IndexReport is what VerifyIndex found.
type IndexReport struct {
	// From and Through are the records checked: the kept ones the index's
	// run files answer for (the newest, still only in memory, are not).
	// From > Through: none.
	From    uint64 `json:"from"`
	Through uint64 `json:"through"`
	Pairs   uint64 `json:"pairs"` // (term, record) pairs the index holds for them
	// Mismatch, if set, is the first range of records whose pairs in the
	// index differ from what their records imply: a run file edited, or
	// damaged with its checksums kept. Queries and the citizen view may
	// miss records there until the index is rebuilt.
	Mismatch *SeqRange `json:"mismatch,omitempty"`
	// Error, if set, is why the index could not be checked (VerifyIndex's
	// error, as a caller that reports it beside the chain's puts it: a run
	// file corrupt, named).
	Error string `json:"error,omitempty"`
}

// SeqRange is the records From through Through.
type SeqRange struct {
	From    uint64 `json:"from"`
	Through uint64 `json:"through"`
}

// OK reports whether the index matched the log.
func (r IndexReport) OK() bool { return r.Mismatch == nil && r.Error == "" }

// indexBuckets is how many ranges of records VerifyIndex sums apart, to
// name where a mismatch lies.
const indexBuckets = 64

// VerifyIndex checks the secondary index against the log: for every kept
// record its run files answer for, the (term, record) pairs they hold must
// be exactly those the record implies (redacted and unreadable records are
// left out: Verify names the latter). The index is not chained, so Verify
// cannot see a run file edited with valid checksums to hide records from
// queries and the citizen view; this can. Both sides are summed as sets
// under a key drawn for this call (AES of each pair, added up in 64 ranges
// of records), so no edit can be made to balance out. It reads the whole
// log and index, beside the writer, and waits for a running Prune, Backup
// or Export (as long as ctx allows) and they for it. A read-only store
// that works on an index rebuilt apart (Dir's far behind or ahead of the
// log) has Dir's checked all the same.
func VerifyIndex(ctx context.Context, s *Store) (IndexReport, error) {
	release, err := s.useFiles(ctx)
	if err != nil {
		return IndexReport{}, err
	}
	defer release()
	idx := s.idx
	if s.idxApart {
		if idx, err = termindex.Open(termindex.Options{Dir: filepath.Join(s.dir, "index"), ReadOnly: true, Logger: s.log}); err != nil {
			return IndexReport{}, fmt.Errorf("audit: index: %w", err)
		}
		defer idx.Close()
	}
	s.mu.Lock()
	from, head := s.pubw.first, s.pubw.seq
	s.mu.Unlock()
	rep := IndexReport{From: max(from, 1), Through: min(idx.Durable(), head)}
	if rep.From > rep.Through {
		return rep, nil
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	blk, err := aes.NewCipher(key[:])
	if err != nil {
		return rep, err
	}
	sums := indexSums{blk: blk, from: rep.From, width: (rep.Through-rep.From)/indexBuckets + 1}
	var fromLog, fromIndex [indexBuckets][2]uint64
	skip := make([]uint64, (rep.Through-rep.From)/64+1) // records left out
	skipped := func(seq uint64) bool { i := seq - rep.From; return skip[i/64]&(1<<(i%64)) != 0 }

	vs := s.lg.snapshot()
	defer releaseAll(vs)
	var terms []uint64
	var werr error
	n := 0
	err = walkFrames(vs, rep.From, func(seq uint64, v []byte, err error) bool {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			werr = ctx.Err()
			return false
		}
		if err != nil {
			werr = fmt.Errorf("audit: the log is damaged (fsb audit verify names where): %w", err)
			return false
		}
		if seq < rep.From {
			return true
		}
		if seq > rep.Through {
			return false
		}
		var r Record
		e, err := parseEntry(seq, v)
		if err == nil && !e.redacted {
			r, err = Decode(e.record)
		}
		if err != nil || e.redacted {
			i := seq - rep.From
			skip[i/64] |= 1 << (i % 64)
			return true
		}
		terms = appendIndexTerms(terms[:0], &r)
		slices.Sort(terms)
		for _, t := range slices.Compact(terms) {
			sums.add(&fromLog, t, seq)
		}
		return true
	})
	if err = errors.Join(err, werr); err != nil {
		return rep, err
	}
	n = 0
	err = idx.Pairs(rep.From, rep.Through, func(term, seq uint64) error {
		if n++; n%4096 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		if !skipped(seq) {
			rep.Pairs++
			sums.add(&fromIndex, term, seq)
		}
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("audit: index: %w", err)
	}
	for b := range indexBuckets {
		if fromLog[b] != fromIndex[b] {
			lo := rep.From + uint64(b)*sums.width
			rep.Mismatch = &SeqRange{From: lo, Through: min(lo+sums.width-1, rep.Through)}
			break
		}
	}
	return rep, nil
}

// AddIndex puts VerifyIndex's report into rep.Index when the chain
// verified (on a damaged log the chain's report names where, and the index
// check's walk would only fail there); an index that cannot be read is
// reported there too (IndexReport.Error), beside the chain's report.
func AddIndex(ctx context.Context, s *Store, rep *Report) {
	if !rep.OK() {
		return
	}
	ix, err := VerifyIndex(ctx, s)
	if err != nil {
		ix = IndexReport{Error: err.Error()}
	}
	rep.Index = &ix
}

// indexSums adds up (term, seq) pairs as a set hash: each pair encrypted
// under a fresh key, the two halves added apart, per range of seqs.
type indexSums struct {
	blk         cipher.Block
	from, width uint64
}

func (h *indexSums) add(sums *[indexBuckets][2]uint64, term, seq uint64) {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], term)
	binary.BigEndian.PutUint64(b[8:], seq)
	h.blk.Encrypt(b[:], b[:])
	s := &sums[(seq-h.from)/h.width]
	s[0] += binary.BigEndian.Uint64(b[:8])
	s[1] += binary.BigEndian.Uint64(b[8:])
}
