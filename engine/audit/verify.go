package audit

import (
	"cmp"
	"context"
	"crypto/ed25519"
	"fmt"
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
	First    uint64 `json:"first"` // first record checked (1, or the anchor's)
	Last     uint64 `json:"last"`  // last record checked
	Head     Hash   `json:"head"`
	Records  uint64 `json:"records"`
	Redacted uint64 `json:"redacted"` // records whose content retention removed
	// UnsignedRedactions counts the redacted records whose redaction
	// carries no signature: made before redactions were signed, copied
	// from a migrated Badger store — or erased by someone with access to
	// the files. A store that began with signed redactions has none.
	UnsignedRedactions uint64 `json:"unsignedRedactions,omitempty"`
	Checkpoints        uint64 `json:"checkpoints"`
	Signed             uint64 `json:"signed"` // the last seq covered by a valid checkpoint
	Anchored           bool   `json:"anchored"`
	// Links (VerifyExport only) is how many link lines (digests of the
	// records after the exported range, up to the checkpoint that signs
	// it) were chained; they are not records of the export, so Records,
	// Redacted, Last and Head leave them out (Signed names the checkpoint,
	// which may lie past Last).
	Links uint64 `json:"links,omitempty"`
	// Witnessed (VerifyWitnessed only) is the largest seq of a checkpoint
	// kept outside the store that the chain still holds.
	Witnessed uint64   `json:"witnessed,omitempty"`
	Problem   *Problem `json:"problem,omitempty"`
	// Index is VerifyIndex's report, where the caller asked for it too
	// (fsb audit verify -index): the index is not part of the chain, so
	// OK does not cover it.
	Index *IndexReport `json:"index,omitempty"`
}

// OK reports whether the chain verified.
func (r Report) OK() bool { return r.Problem == nil }

// Unsigned is how many of the newest records no checkpoint covers yet:
// they are chained but could be dropped unseen until the next checkpoint.
// (An export's checkpoint may sign past its last record: Report.Links.)
func (r Report) Unsigned() uint64 { return r.Last - min(r.Signed, r.Last) }

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
	// twin is a second record under the last accepted seq that chains onto
	// the same predecessor: the entry after it tells which one was inserted.
	twin *entry
	// gap is an entry that came before the record expected next: the entry
	// after it tells whether that record is missing or stored out of order.
	gap      *entry
	lastPrev Hash   // stored prev of the last accepted record
	goodCk   uint64 // last seq confirmed by a checkpoint
	// badRedaction is the first redaction whose signature failed before
	// any anchor or checkpoint showed the key to be the store's: the next
	// checkpoint decides between a wrong key (badSignature) and a record
	// erased by hand.
	badRedaction uint64
}

const erasedByHand = "a redaction the store's key did not sign: the record's content was erased by hand, not by retention"

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
	if w.rep.Problem != nil {
		return
	}
	if r := w.badRedaction; r != 0 && r < seq && k != BadSignature {
		seq, k, detail, args = r, Altered, erasedByHand, nil // the first bad record
	}
	w.rep.Problem = &Problem{Seq: seq, Kind: k, Detail: fmt.Sprintf(detail, args...)}
}

func (w *walker) failed() bool { return w.rep.Problem != nil }

func selfConsistent(e *entry) bool { return link(e.prev, e.digest) == e.hash }

// unreadable feeds a frame of the log that does not parse: the record the
// walker expects next is altered (or, with a suspect pending, that one).
func (w *walker) unreadable(err error) {
	if w.failed() {
		return
	}
	if s := w.suspect; s != nil {
		w.suspect = nil
		w.fail(s.seq, Altered, "its bytes do not match its chain hash")
		return
	}
	w.settle()
	w.fail(w.next, Altered, "its frame in the log is unreadable: %v", err)
}

// entry feeds the record stored under seq e.seq (badKey: an entry that
// sits where no record can).
func (w *walker) entry(e *entry, parseErr error, badKey bool) {
	if w.failed() {
		return
	}
	if tw := w.twin; tw != nil {
		w.twin = nil
		if !badKey && parseErr == nil && e.seq == tw.seq+1 && e.prev == tw.hash {
			w.fail(tw.seq, Inserted, "two records claim %d and the chain goes on from the second: the first was inserted", tw.seq)
		} else {
			w.fail(w.next, Inserted, "an entry numbered %d sits where record %d should be", tw.seq, w.next)
		}
		return
	}
	if g := w.gap; g != nil {
		w.gap = nil
		if !badKey && parseErr == nil && e.seq == w.next {
			w.fail(w.next, Altered, "the log's order was changed: record %d is stored after record %d", w.next, g.seq)
		} else {
			w.fail(w.next, Removed, "records %d…%d are missing", w.next, g.seq-1)
		}
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
	case e.seq < w.next && w.rep.Records == 0 && e.seq < w.rep.First:
		return // below the anchor: left over by an interrupted prune
	case e.seq+1 == w.next && w.rep.Records > 0 && parseErr == nil && e.prev == w.lastPrev &&
		e.hash != w.prev && selfConsistent(e):
		w.twin = e // which of the two is the original: the next entry says
		return
	case e.seq < w.next:
		w.fail(w.next, Inserted, "an entry numbered %d sits where record %d should be", e.seq, w.next)
		return
	case e.seq > w.next:
		w.gap = e // missing, or stored out of order: the next entry says
		return
	case parseErr != nil:
		w.fail(e.seq, Altered, "entry unreadable: %v", parseErr)
		return
	}
	if e.redacted && e.sig != nil && !signedRedaction(w.pub, e) {
		if w.rep.Anchored || w.rep.Checkpoints > 0 { // the key is the store's
			w.fail(e.seq, Altered, erasedByHand)
			return
		}
		w.badRedaction = cmp.Or(w.badRedaction, e.seq)
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
	w.prev, w.lastPrev = e.hash, e.prev
	w.rep.Last, w.rep.Head = e.seq, e.hash
	w.rep.Records++
	if e.redacted {
		w.rep.Redacted++
		if e.sig == nil {
			w.rep.UnsignedRedactions++
		}
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
	if r := w.badRedaction; r != 0 {
		w.fail(r, Altered, erasedByHand)
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
	if g := w.gap; g != nil {
		w.gap = nil
		w.fail(w.next, Removed, "records %d…%d are missing", w.next, g.seq-1)
	}
	if tw := w.twin; tw != nil {
		w.twin = nil
		w.fail(w.next, Inserted, "an entry numbered %d sits where record %d should be", tw.seq, w.next)
	}
	if w.suspect != nil {
		s := w.suspect
		w.suspect = nil
		w.fail(s.seq, Altered, "its bytes do not match its chain hash")
	}
}

func (w *walker) report() Report {
	w.settle()
	if r := w.badRedaction; r != 0 {
		w.fail(r, Altered, erasedByHand)
	}
	return w.rep
}

// Verify walks the whole chain and every checkpoint of s, as far as they
// were durable when it started, and reports the first record altered,
// removed or inserted. The error is for I/O only; a broken chain is
// Report.Problem.
func Verify(ctx context.Context, s *Store, pub ed25519.PublicKey) (Report, error) {
	if s.closed.Load() {
		return Report{}, ErrClosed
	}
	// The checkpoints first: each names records synced before it was
	// written, so all of them are in the log snapshot taken after. One
	// being signed for records already acknowledged is waited for.
	s.awaitCheckpoint(ctx)
	cks := s.cks.reader()
	vs := s.lg.snapshot()
	defer releaseAll(vs)
	return verifyFiles(ctx, vs, cks, s.anchorPath(), pub)
}

// verifyFiles walks a log snapshot and checkpoints (Verify, migration).
func verifyFiles(ctx context.Context, vs []segView, cks *ckReader, anchorPath string, pub ed25519.PublicKey) (Report, error) {
	a, err := readAnchor(anchorPath)
	if err != nil {
		return Report{}, err
	}
	w := newWalker(pub, a)
	if w.failed() {
		return w.report(), nil
	}
	var peek *Checkpoint
	var peekBad bool
	var ioErr error
	feedCheckpoints := func(upTo uint64) {
		for !w.failed() {
			if peek == nil {
				c, bad, ok, err := cks.next()
				if err != nil {
					ioErr = err
					return
				}
				if !ok {
					return
				}
				peek, peekBad = &c, bad
			}
			if peek.Seq > upTo {
				return
			}
			if peekBad {
				w.fail(peek.Seq, BadSignature, "the checkpoint at %d is unreadable", peek.Seq)
				return
			}
			w.checkpoint(*peek)
			peek = nil
		}
	}
	err = walkFrames(vs, 0, func(seq uint64, v []byte, ferr error) bool {
		if err := ctx.Err(); err != nil {
			ioErr = err
			return false
		}
		if ferr != nil {
			w.unreadable(ferr)
			return !w.failed()
		}
		// Checkpoints up to the previous record come first.
		if seq > 0 {
			feedCheckpoints(seq - 1)
		}
		e, perr := parseEntry(seq, v)
		w.entry(&e, perr, seq == 0)
		return !w.failed() && ioErr == nil
	})
	if err == nil {
		err = ioErr
	}
	if err != nil {
		return Report{}, err
	}
	feedCheckpoints(^uint64(0))
	if ioErr != nil {
		return Report{}, ioErr
	}
	return w.report(), nil
}
