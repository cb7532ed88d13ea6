package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"

	badger "github.com/dgraph-io/badger/v4"
)

// ProblemKind classifies what Verify found wrong.
type ProblemKind string

// The problem kinds.
const (
	Altered  ProblemKind = "altered"  // a record's bytes or chain link changed
	Removed  ProblemKind = "removed"  // a record is missing
	Inserted ProblemKind = "inserted" // a record that the chain never had
	// BadSignature: a checkpoint or the anchor is not signed by the key.
	BadSignature ProblemKind = "badSignature"
)

// Problem is the first thing wrong with the chain.
type Problem struct {
	Seq  uint64      `json:"seq"` // the first bad record
	Kind ProblemKind `json:"kind"`
	// Through is set when the damage is only known to lie in Seq…Through:
	// a chain rewritten consistently, caught by the signed checkpoint at Through.
	Through uint64 `json:"through,omitempty"`
	Detail  string `json:"detail"`
}

func (p *Problem) Error() string {
	if p.Through != 0 {
		return fmt.Sprintf("record %d…%d %s: %s", p.Seq, p.Through, p.Kind, p.Detail)
	}
	return fmt.Sprintf("record %d %s: %s", p.Seq, p.Kind, p.Detail)
}

// Report is what Verify found.
type Report struct {
	First       uint64   `json:"first"` // first record checked (1, or the anchor's)
	Last        uint64   `json:"last"`  // last record checked
	Head        Hash     `json:"head"`
	Records     uint64   `json:"records"`
	Redacted    uint64   `json:"redacted"` // records whose content retention removed
	Checkpoints uint64   `json:"checkpoints"`
	Signed      uint64   `json:"signed"` // the last seq covered by a valid checkpoint
	Anchored    bool     `json:"anchored"`
	Problem     *Problem `json:"problem,omitempty"`
}

// OK reports whether the chain verified.
func (r Report) OK() bool { return r.Problem == nil }

// Unsigned is how many of the newest records no checkpoint covers yet:
// they are chained but could be dropped unseen until the next checkpoint.
func (r Report) Unsigned() uint64 { return r.Last - r.Signed }

// walker checks a stream of entries and checkpoints in seq order. It names
// the first bad seq: naive edits (bytes changed, a record deleted, one
// inserted, keys renumbered) are pinpointed through the stored links; a
// chain rewritten consistently is caught by the next signed checkpoint,
// and then the damage is known only to lie after the previous one.
type walker struct {
	pub     ed25519.PublicKey
	rep     Report
	next    uint64 // expected seq
	prev    Hash   // h(next-1), computed
	suspect *entry // hash mismatch at next, classified by the entry after it
	goodCk  uint64 // last seq confirmed by a checkpoint
}

func newWalker(pub ed25519.PublicKey, a *Anchor) *walker {
	w := &walker{pub: pub, next: 1}
	if a != nil {
		w.rep.Anchored = true
		if !a.Valid(pub) {
			w.fail(a.Seq, BadSignature, "the anchor of the pruned chain is not signed by this key")
			return w
		}
		w.next, w.prev = a.Seq, a.Prev
	}
	w.rep.First = w.next
	w.goodCk = w.next - 1
	w.rep.Signed = w.next - 1
	return w
}

func (w *walker) fail(seq uint64, k ProblemKind, detail string, args ...any) {
	if w.rep.Problem == nil {
		w.rep.Problem = &Problem{Seq: seq, Kind: k, Detail: fmt.Sprintf(detail, args...)}
	}
}

func (w *walker) failed() bool { return w.rep.Problem != nil }

func selfConsistent(e *entry) bool { return link(e.prev, e.digest) == e.hash }

// entry feeds the record stored under key seq e.seq (badKey: a key in the
// record space that is not a seq).
func (w *walker) entry(e *entry, parseErr error, badKey bool) {
	if w.failed() {
		return
	}
	if w.suspect != nil {
		s := w.suspect
		w.suspect = nil
		if !badKey && parseErr == nil && e.seq == s.seq+1 && e.prev == w.prev && selfConsistent(e) {
			w.fail(s.seq, Inserted, "a record that does not chain was put at %d; the original %d follows it", s.seq, s.seq)
		} else {
			w.fail(s.seq, Altered, "its bytes do not match its chain hash")
		}
		return
	}
	switch {
	case badKey:
		w.fail(w.next, Inserted, "a key that is not a record number sits among the records")
		return
	case e.seq < w.next:
		return // below the anchor: left over by an interrupted prune
	case e.seq > w.next:
		w.fail(w.next, Removed, "records %d…%d are missing", w.next, e.seq-1)
		return
	case parseErr != nil:
		w.fail(e.seq, Altered, "entry unreadable: %v", parseErr)
		return
	}
	if !e.redacted {
		_, inner, _, ok := parseFrame(e.record)
		switch {
		case !ok:
			w.fail(e.seq, Altered, "record frame unreadable")
			return
		case inner > e.seq:
			w.fail(e.seq, Removed, "record %d is missing: the records after it were renumbered (found %d here)", e.seq, inner)
			return
		case inner < e.seq:
			w.fail(inner, Inserted, "records were inserted at %d: record %d now sits at %d", inner, inner, e.seq)
			return
		}
	}
	if e.prev != w.prev {
		if selfConsistent(e) && e.seq > w.rep.First {
			w.fail(e.seq-1, Altered, "record %d's chain hash was rewritten: record %d links to another", e.seq-1, e.seq)
		} else if e.seq == w.rep.First && w.rep.Anchored {
			w.fail(e.seq, Altered, "the first kept record does not link to the signed anchor")
		} else {
			w.fail(e.seq, Altered, "its chain link does not match the record before it")
		}
		return
	}
	if link(w.prev, e.digest) != e.hash {
		w.suspect = e
		return
	}
	w.prev = e.hash
	w.rep.Last, w.rep.Head = e.seq, e.hash
	w.rep.Records++
	if e.redacted {
		w.rep.Redacted++
	}
	w.next++
}

// checkpoint feeds a checkpoint once every entry up to its seq was fed.
func (w *walker) checkpoint(c Checkpoint) {
	if w.failed() {
		return
	}
	if c.Seq < w.rep.First {
		return // pruned with its records
	}
	w.settle()
	if w.failed() {
		return
	}
	if !c.Valid(w.pub) {
		w.fail(c.Seq, BadSignature, "the checkpoint at %d is not signed by this key", c.Seq)
		return
	}
	w.rep.Checkpoints++
	if c.Seq >= w.next {
		w.fail(w.next, Removed, "the signed checkpoint at %d names records from %d that are missing", c.Seq, w.next)
		return
	}
	if c.Seq != w.next-1 {
		return // fed late (export order): the head at c.Seq is gone; its successors are checked
	}
	if c.Head != w.prev {
		w.rep.Problem = &Problem{Seq: w.goodCk + 1, Through: c.Seq, Kind: Altered,
			Detail: fmt.Sprintf("the chain was rewritten consistently: the head at %d differs from its signed checkpoint", c.Seq)}
		return
	}
	w.goodCk = c.Seq
	w.rep.Signed = c.Seq
}

func (w *walker) settle() {
	if w.suspect != nil {
		s := w.suspect
		w.suspect = nil
		w.fail(s.seq, Altered, "its bytes do not match its chain hash")
	}
}

func (w *walker) report() Report {
	w.settle()
	return w.rep
}

// Verify walks the whole chain and every checkpoint of s in one snapshot
// and reports the first record altered, removed or inserted. The error is
// for I/O only; a broken chain is Report.Problem.
func Verify(ctx context.Context, s *Store, pub ed25519.PublicKey) (Report, error) {
	var rep Report
	err := s.view(func(txn *badger.Txn) error {
		a, err := getAnchor(txn)
		if err != nil {
			return err
		}
		w := newWalker(pub, a)
		if w.failed() {
			rep = w.report()
			return nil
		}
		cks := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pCheckpoint}, PrefetchValues: true, PrefetchSize: 16})
		defer cks.Close()
		cks.Rewind()
		feedCheckpoints := func(upTo uint64) error {
			for ; cks.Valid() && !w.failed(); cks.Next() {
				seq, ok := keySeq(cks.Item().Key())
				if !ok || seq > upTo {
					if !ok {
						w.fail(w.next, Inserted, "a key that is not a checkpoint number sits among the checkpoints")
					}
					return nil
				}
				v, err := cks.Item().ValueCopy(nil)
				if err != nil {
					return err
				}
				c, ok := decodeCheckpoint(v)
				if !ok || c.Seq != seq {
					w.fail(seq, BadSignature, "the checkpoint at %d is unreadable", seq)
					return nil
				}
				w.checkpoint(c)
			}
			return nil
		}
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pRecord}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		for it.Rewind(); it.Valid() && !w.failed(); it.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			seq, ok := keySeq(it.Item().Key())
			if !ok {
				w.entry(nil, nil, true)
				continue
			}
			// Checkpoints up to the previous record come first.
			if seq > 0 {
				if err := feedCheckpoints(seq - 1); err != nil {
					return err
				}
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			e, perr := parseEntry(seq, v)
			w.entry(&e, perr, false)
		}
		if err := feedCheckpoints(^uint64(0)); err != nil {
			return err
		}
		rep = w.report()
		return nil
	})
	return rep, err
}

func getAnchor(txn *badger.Txn) (*Anchor, error) {
	it, err := txn.Get(anchorKey)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return nil, err
	}
	a, ok := decodeAnchor(v)
	if !ok {
		return &Anchor{}, nil // fails its signature check
	}
	return &a, nil
}

// view runs fn in a read snapshot, refusing a closed database (Badger
// panics on iterators of a closed DB).
func (s *Store) view(fn func(txn *badger.Txn) error) error {
	if s.db.IsClosed() {
		return ErrClosed
	}
	return s.db.View(fn)
}
