package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// PruneReport says what Prune removed.
type PruneReport struct {
	Deleted  uint64  `json:"deleted"`  // records removed from the start of the chain
	Redacted uint64  `json:"redacted"` // later records whose content was removed, digest kept
	Anchor   *Anchor `json:"anchor,omitempty"`
}

// Prune applies each service's retention as of now, keeping the remaining
// chain verifiable:
//
//   - expired records at the start of the chain are deleted, after a signed
//     anchor names the first kept record and the chain hash before it;
//   - an expired record after a kept one is redacted: its content and index
//     entries go, its digest stays, so the chain through it still verifies.
//
// Prune verifies the chain first and refuses to prune a damaged one (an
// anchor over altered records would launder them), and touches only
// records a checkpoint already covers. It runs beside the writer.
func (s *Store) Prune(ctx context.Context, now time.Time) (PruneReport, error) {
	var rep PruneReport
	if s.opt.Signer == nil {
		return rep, ErrReadOnly
	}
	s.pruneMu.Lock()
	defer s.pruneMu.Unlock()
	v, err := Verify(ctx, s, s.pub)
	if err != nil {
		return rep, err
	}
	if v.Problem != nil {
		return rep, fmt.Errorf("audit: prune refused, the chain does not verify: %w", v.Problem)
	}
	// A call still running may finish after this prune removed its
	// request's index keys: from now on the outcomes of requests up to
	// v.Signed get keys of their own (store.go, writeBatch). The empty
	// record is a barrier: once it is acknowledged, every outcome framed
	// under the old rule is committed, so the plan below sees it and
	// materialize gives it keys if its request's go.
	s.prunedThrough.Store(max(s.prunedThrough.Load(), v.Signed))
	if err := s.append(ctx, &pending{}); err != nil {
		return rep, fmt.Errorf("audit: prune: %w", err)
	}
	expired := func(service string, t time.Time) bool {
		r := s.policy(service).Retention
		return r > 0 && t.Add(r).Before(now)
	}

	// Plan in one snapshot. The work is bounded by what expires: the prefix
	// walk stops at the first kept record; redaction candidates come from
	// each service's index up to its retention horizon, and (for services
	// under the default policy) from the records up to the default horizon.
	var del, red, stale []victim
	var mat [][]byte
	keep := v.First // the first kept record
	err = s.view(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pRecord}, PrefetchValues: true})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			seq, ok := keySeq(it.Item().Key())
			if !ok || seq > v.Signed {
				break
			}
			vi, service, err := readVictim(txn, it.Item(), seq)
			if err != nil {
				return err
			}
			if seq < v.First {
				stale = append(stale, vi) // left below the anchor by an interrupted prune
				continue
			}
			if !expired(service, vi.e.time) {
				break
			}
			del = append(del, vi)
			keep = seq + 1
		}
		seen := map[uint64]bool{}
		consider := func(seq uint64) error {
			if seen[seq] || seq < keep || seq > v.Signed {
				return nil
			}
			seen[seq] = true
			item, err := txn.Get(seqKey(pRecord, seq))
			if errors.Is(err, badger.ErrKeyNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			vi, service, err := readVictim(txn, item, seq)
			if err != nil {
				return err
			}
			if !vi.e.redacted && expired(service, vi.e.time) {
				red = append(red, vi)
			}
			return nil
		}
		horizon := func(r time.Duration) (uint64, error) {
			_, hi, err := seqRange(txn, time.Time{}, now.Add(-r))
			return min(hi, v.Signed), err
		}
		for name, p := range s.opt.Services {
			if p.Retention <= 0 {
				continue
			}
			hi, err := horizon(p.Retention)
			if err != nil {
				return err
			}
			seqs := newCallSeqs(txn, [][]byte{indexPrefix(fService, name)}, keep, hi, false, s.gap)
			for {
				q, ok, err := seqs.next()
				if err == nil && ok {
					err = consider(q)
				}
				if err != nil || !ok {
					seqs.close()
					if err != nil {
						return err
					}
					break
				}
			}
		}
		if s.opt.Default.Retention > 0 {
			hi, err := horizon(s.opt.Default.Retention)
			if err != nil {
				return err
			}
			for q := keep; q <= hi; q++ {
				if err := ctx.Err(); err != nil {
					return err
				}
				if err := consider(q); err != nil {
					return err
				}
			}
		}
		mat, err = s.materialize(txn, [][]victim{stale, del, red})
		return err
	})
	if err != nil {
		return rep, fmt.Errorf("audit: prune: %w", err)
	}

	if len(del) > 0 {
		// The anchor first, durably: an interrupted prune leaves old
		// records below it, which Verify skips and the next Prune deletes.
		a := Anchor{Seq: keep, Prev: del[len(del)-1].e.hash, Time: now.UTC()}
		if a.Signature, err = sign(s.opt.Signer, AnchorMessage(a.Seq, a.Prev, a.Time)); err != nil {
			return rep, err
		}
		if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(anchorKey, encodeAnchor(a)) }); err != nil {
			return rep, fmt.Errorf("%w: prune: %v", ErrUnavailable, err)
		}
		if err := s.db.Sync(); err != nil {
			return rep, fmt.Errorf("%w: prune: %v", ErrUnavailable, err)
		}
		rep.Anchor = &a
		s.mu.Lock()
		s.pubw.first = keep
		s.mu.Unlock()
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for _, k := range mat { // before the request keys they replace go
		if err := wb.Set(k, nil); err != nil {
			return rep, fmt.Errorf("audit: prune: %w", err)
		}
	}
	for _, vi := range append(stale, del...) {
		for _, k := range append(vi.keys, seqKey(pRecord, vi.seq), seqKey(pCheckpoint, vi.seq)) {
			if err := wb.Delete(k); err != nil {
				return rep, fmt.Errorf("audit: prune: %w", err)
			}
		}
		rep.Deleted++
	}
	for _, vi := range red {
		for _, k := range vi.keys {
			if err := wb.Delete(k); err != nil {
				return rep, fmt.Errorf("audit: prune: %w", err)
			}
		}
		if err := wb.Set(seqKey(pRecord, vi.seq), redactedEntry(&vi.e)); err != nil {
			return rep, fmt.Errorf("audit: prune: %w", err)
		}
		rep.Redacted++
	}
	if err := wb.Flush(); err != nil {
		return rep, fmt.Errorf("audit: prune: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return rep, fmt.Errorf("audit: prune: %w", err)
	}
	return rep, nil
}

// Backup writes a full Badger backup of the store (records, indexes,
// checkpoints, anchor) to w. It runs beside the writer; what was durable
// when it started is in it.
func (s *Store) Backup(ctx context.Context, w io.Writer) error {
	if s.db.IsClosed() {
		return ErrClosed
	}
	_, err := s.db.Backup(w, 0)
	if err != nil {
		return fmt.Errorf("audit: backup: %w", err)
	}
	return nil
}

// Restore loads a Backup into dir, which must not exist or be empty. Open
// the store there afterwards; Verify proves the chain came through intact.
func Restore(ctx context.Context, dir string, r io.Reader) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("audit: restore: %s is not empty", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit: restore: %w", err)
	}
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithSyncWrites(true))
	if err != nil {
		return fmt.Errorf("audit: restore: %w", err)
	}
	if err := db.Load(r, 256); err != nil {
		db.Close()
		return fmt.Errorf("audit: restore: %w", err)
	}
	if err := db.Sync(); err != nil {
		db.Close()
		return fmt.Errorf("audit: restore: %w", err)
	}
	return db.Close()
}

type victim struct {
	seq     uint64
	e       entry
	keys    [][]byte
	request bool // a request record (its outcome may be found through its keys)
}

// materialize returns the index keys to give kept outcomes whose requests'
// keys go (index layout 2: such an outcome is found through them).
func (s *Store) materialize(txn *badger.Txn, gone [][]victim) ([][]byte, error) {
	removed := map[uint64]bool{}
	for _, vs := range gone {
		for _, vi := range vs {
			removed[vi.seq] = true
		}
	}
	var keys [][]byte
	for _, vs := range gone {
		for _, vi := range vs {
			if !vi.request || s.gap == 0 {
				continue
			}
			o, ok, err := outcomeSeq(txn, vi.seq)
			if err != nil {
				return nil, err
			}
			if !ok || o <= vi.seq || o-vi.seq > s.gap || removed[o] {
				continue
			}
			e, err := getEntry(txn, o)
			if errors.Is(err, ErrNotFound) {
				continue
			}
			if err != nil {
				return nil, err
			}
			if e.Redacted {
				continue
			}
			for _, t := range indexTerms(&e.Record) {
				if t.shared {
					keys = append(keys, indexKey(t.field, t.val, o))
				}
			}
		}
	}
	return keys, nil
}

// readVictim reads an entry with the service it belongs to and the index
// keys it has.
func readVictim(txn *badger.Txn, item *badger.Item, seq uint64) (victim, string, error) {
	val, err := item.ValueCopy(nil)
	if err != nil {
		return victim{}, "", err
	}
	e, err := parseEntry(seq, val)
	if err != nil {
		return victim{}, "", fmt.Errorf("record %d: %w", seq, err)
	}
	vi := victim{seq: seq, e: e}
	if e.redacted {
		return vi, e.service, nil
	}
	r, err := Decode(e.record)
	if err != nil {
		return victim{}, "", fmt.Errorf("record %d: %w", seq, err)
	}
	for _, k := range indexKeys(&r) {
		// Only those present: an outcome has its shared terms' keys in
		// layout 1 or once materialised, not otherwise.
		if _, err := txn.Get(k); err == nil {
			vi.keys = append(vi.keys, k)
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return victim{}, "", err
		}
	}
	vi.e.service, vi.request = r.Service, r.Kind == KindRequest
	return vi, r.Service, nil
}
