package audit

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrNotCheckpointed means no signed checkpoint covers the record yet.
var ErrNotCheckpointed = errors.New("audit: no checkpoint covers the record yet")

// Proof returns what a consumer needs to check that record seq is in the
// chain up to a signed checkpoint (see Proof and VerifyProof). If no
// checkpoint covers seq yet and the store can sign, it signs one first.
// The proof carries the record's bytes: serve it only to whom the record
// concerns (ConsumerQuery's rule).
func (s *Store) Proof(ctx context.Context, seq uint64) (Proof, error) {
	p, err := s.proof(ctx, seq)
	if errors.Is(err, ErrNotCheckpointed) && s.opt.Signer != nil {
		if _, cerr := s.Checkpoint(ctx); cerr != nil {
			return Proof{}, cerr
		}
		p, err = s.proof(ctx, seq)
	}
	return p, err
}

func (s *Store) proof(_ context.Context, seq uint64) (Proof, error) {
	if s.closed.Load() {
		return Proof{}, ErrClosed
	}
	s.mu.Lock()
	first, last := s.pubw.first, s.pubw.seq
	s.mu.Unlock()
	if seq < first || seq > last {
		return Proof{}, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	ck, found, err := s.cks.atOrAfter(seq)
	if err != nil {
		return Proof{}, err
	}
	if !found {
		return Proof{}, fmt.Errorf("%w: %d", ErrNotCheckpointed, seq)
	}
	v, err := s.lg.read(seq)
	if err != nil {
		return Proof{}, err
	}
	e, err := parseEntry(seq, v)
	if err != nil {
		return Proof{}, fmt.Errorf("audit: proof: record %d: %w", seq, err)
	}
	p := Proof{Seq: seq, Prev: e.prev, Hash: e.hash, Digest: e.digest, Record: e.record, Checkpoint: ck}
	for n := seq + 1; n <= ck.Seq; n++ {
		v, err := s.lg.read(n)
		if err != nil {
			return Proof{}, fmt.Errorf("audit: proof: record %d: %w", n, err)
		}
		ne, err := parseEntry(n, v)
		if err != nil {
			return Proof{}, fmt.Errorf("audit: proof: record %d: %w", n, err)
		}
		p.Following = append(p.Following, ne.digest)
	}
	return p, nil
}

// ExportOptions choose the records to export by seq (0: from the first,
// to the last).
type ExportOptions struct {
	From, To uint64
}

// ExportLine is one line of an export (JSON Lines). Type is "anchor",
// "record", "redacted" (content removed by retention), "checkpoint", or
// "link" (a record after To, by digest only, up to the next checkpoint so
// that every exported record is covered by a signature).
type ExportLine struct {
	Type       string          `json:"type"`
	Seq        uint64          `json:"seq,omitempty"`
	Prev       *Hash           `json:"prev,omitempty"`
	Hash       *Hash           `json:"hash,omitempty"`
	Digest     *Hash           `json:"digest,omitempty"`
	Record     json.RawMessage `json:"record,omitempty"` // the exact stored bytes
	Time       *time.Time      `json:"time,omitempty"`
	Service    string          `json:"service,omitempty"`
	Signature  []byte          `json:"signature,omitempty"` // a redaction's (RedactionMessage)
	Checkpoint *Checkpoint     `json:"checkpoint,omitempty"`
	Anchor     *Anchor         `json:"anchor,omitempty"`
}

// ExportReport counts what Export wrote.
type ExportReport struct {
	Records     uint64 `json:"records"`
	Checkpoints uint64 `json:"checkpoints"`
	Links       uint64 `json:"links"`
	Covered     bool   `json:"covered"` // a checkpoint at or after the last record was written
}

// ErrEmptyExport means an export range holds no record: the trail is
// empty, or From…To lies before its first record (pruned), after its last,
// or From is above To.
var ErrEmptyExport = errors.New("audit: no record to export")

// describeRange says why From…To selects nothing in a trail holding
// first…last (last < first: none).
func describeRange(o ExportOptions, first, last uint64) string {
	switch {
	case last < first:
		return "the trail holds no record"
	case o.To != 0 && o.To < o.From:
		return fmt.Sprintf("from %d is above to %d", o.From, o.To)
	case o.From > last:
		return fmt.Sprintf("the trail ends at record %d, before from %d", last, o.From)
	default:
		return fmt.Sprintf("the trail starts at record %d (older ones were pruned), after to %d", first, o.To)
	}
}

// Export writes records From…To as JSON Lines with their chain links and
// the checkpoints among and just after them: the file proves itself
// (VerifyExport). If the store can sign, the head is checkpointed first so
// that the newest records are covered. A range that selects no record is
// ErrEmptyExport, with nothing written. It waits for a running Prune or
// Backup (as long as ctx allows) and they for it.
func (s *Store) Export(ctx context.Context, w io.Writer, o ExportOptions) (ExportReport, error) {
	if s.opt.Signer != nil {
		if h := s.Head(); h.Seq > 0 {
			if ck, ok := s.LastCheckpoint(); !ok || ck.Seq < h.Seq {
				if _, err := s.Checkpoint(ctx); err != nil {
					return ExportReport{}, err
				}
			}
		}
	}
	// Not beside a Prune, which could delete the segment From lies in
	// between the range's computation and the walk.
	release, err := s.useFiles(ctx)
	if err != nil {
		return ExportReport{}, err
	}
	defer release()
	var rep ExportReport
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false) // records are written as stored
	if s.closed.Load() {
		return rep, ErrClosed
	}
	s.mu.Lock()
	first, last := s.pubw.first, s.pubw.seq
	s.mu.Unlock()
	from, to := max(o.From, first), last
	if o.To != 0 {
		to = min(o.To, last)
	}
	if last < first || from > to {
		// Nothing to write: an empty file would not verify (VerifyExport
		// wants a record), so say why instead.
		return rep, fmt.Errorf("%w: %s", ErrEmptyExport, describeRange(o, first, last))
	}
	if a, err := readAnchor(s.anchorPath()); err != nil {
		return rep, err
	} else if a != nil && from == a.Seq {
		if err := enc.Encode(ExportLine{Type: "anchor", Anchor: a}); err != nil {
			return rep, err
		}
	}
	// The checkpoints from the first at or after from, in order.
	ck, haveCk, err := s.cks.atOrAfter(from)
	if err != nil {
		return rep, err
	}
	nextCk := func(after uint64) error {
		ck, haveCk, err = s.cks.atOrAfter(after + 1)
		return err
	}
	vs := s.lg.snapshot()
	defer releaseAll(vs)
	var werr error
	err = walkFrames(vs, from, func(seq uint64, v []byte, ferr error) bool {
		if werr = ctx.Err(); werr != nil {
			return false
		}
		if ferr != nil {
			werr = fmt.Errorf("audit: export: the log is damaged after record %d (run verify): %w", seq, ferr)
			return false
		}
		if seq < from || seq > last {
			return seq < from
		}
		e, err := parseEntry(seq, v)
		if err != nil {
			werr = fmt.Errorf("audit: export: record %d: %w", seq, err)
			return false
		}
		l := ExportLine{Seq: seq, Prev: &e.prev, Hash: &e.hash}
		switch {
		case seq > to:
			l.Type, l.Digest = "link", &e.digest
			rep.Links++
		case e.redacted:
			l.Type, l.Digest, l.Time, l.Service, l.Signature = "redacted", &e.digest, &e.time, e.service, e.sig
			rep.Records++
		default:
			l.Type, l.Record = "record", e.record
			rep.Records++
		}
		if werr = enc.Encode(l); werr != nil {
			return false
		}
		// The checkpoint at this seq, if any, follows its record.
		if haveCk && ck.Seq == seq {
			c := ck
			if werr = enc.Encode(ExportLine{Type: "checkpoint", Checkpoint: &c}); werr != nil {
				return false
			}
			rep.Checkpoints++
			if seq >= to {
				rep.Covered = true
				return false
			}
			if werr = nextCk(seq); werr != nil {
				return false
			}
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return rep, err
	}
	return rep, bw.Flush()
}

// VerifyExport checks an export like Verify checks the store. Records after
// the last checkpoint in the file are chained but unsigned (Report.Unsigned).
// An export that starts after the first record takes its first link on
// trust; the next signed checkpoint then vouches for it.
func VerifyExport(ctx context.Context, r io.Reader, pub ed25519.PublicKey) (Report, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var w *walker
	var anchor *Anchor
	line := 0
	// Link lines are chained (they lead to the checkpoint that signs the
	// range) but are not exported records: counted apart, taken out of
	// the report at the end.
	var links, lastSeq uint64
	var lastHead Hash
	inLinks := false
	for sc.Scan() {
		line++
		if err := ctx.Err(); err != nil {
			return Report{}, err
		}
		var l ExportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return Report{}, fmt.Errorf("audit: export line %d: %w", line, err)
		}
		if l.Type == "anchor" {
			if w != nil || l.Anchor == nil {
				return Report{}, fmt.Errorf("audit: export line %d: misplaced anchor", line)
			}
			anchor = l.Anchor
			continue
		}
		if w == nil {
			if anchor != nil {
				w = newWalker(pub, anchor)
			} else if l.Type != "checkpoint" && l.Prev != nil && l.Seq > 1 {
				w = newWalker(pub, nil)
				w.next, w.prev, w.rep.First, w.goodCk, w.rep.Signed = l.Seq, *l.Prev, l.Seq, l.Seq-1, l.Seq-1
			} else {
				w = newWalker(pub, nil)
			}
		}
		switch l.Type {
		case "checkpoint":
			if l.Checkpoint == nil {
				return Report{}, fmt.Errorf("audit: export line %d: checkpoint missing", line)
			}
			w.checkpoint(*l.Checkpoint)
		case "record", "redacted", "link":
			if l.Prev == nil || l.Hash == nil {
				return Report{}, fmt.Errorf("audit: export line %d: prev and hash are required", line)
			}
			if l.Type == "link" {
				inLinks = true
			} else if inLinks {
				return Report{}, fmt.Errorf("audit: export line %d: a %s line after a link line", line, l.Type)
			}
			e := entry{seq: l.Seq, prev: *l.Prev, hash: *l.Hash}
			if l.Type == "record" {
				e.record = l.Record
				e.digest = recordDigest(l.Record)
			} else {
				if l.Digest == nil {
					return Report{}, fmt.Errorf("audit: export line %d: digest is required", line)
				}
				e.redacted, e.digest = true, *l.Digest
				if l.Type == "redacted" && l.Signature != nil {
					if l.Time == nil {
						return Report{}, fmt.Errorf("audit: export line %d: a signed redaction needs its time", line)
					}
					e.time, e.service, e.sig = *l.Time, l.Service, l.Signature
				}
			}
			next := w.next
			w.entry(&e, nil, false)
			switch {
			case w.next == next: // not accepted (yet): a problem, or decided by the next line
			case l.Type == "link":
				links++
			default:
				lastSeq, lastHead = w.rep.Last, w.rep.Head
			}
		default:
			return Report{}, fmt.Errorf("audit: export line %d: unknown type %q", line, l.Type)
		}
	}
	if err := sc.Err(); err != nil {
		return Report{}, err
	}
	if w == nil {
		return Report{}, errors.New("audit: empty export")
	}
	rep := w.report()
	if links > 0 {
		rep.Links = links
		rep.Records -= links
		rep.Redacted -= links // a link carries a digest only, like a redacted record
		rep.UnsignedRedactions -= links
		if rep.Records > 0 {
			rep.Last, rep.Head = lastSeq, lastHead
		} else {
			rep.Last, rep.Head = rep.First-1, Hash{}
		}
	}
	return rep, nil
}
