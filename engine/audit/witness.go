package audit

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// A chain kept on one server can lose its newest records unseen: whoever
// can write the files can cut the log and the checkpoints that signed its
// tail together, and what is left verifies. A witness closes that gap: a
// party outside the store (an auditor, a supervisory body, a consumer)
// keeps copies of signed checkpoints — GET /admin/audit/head's
// "checkpoint", a proof's — and VerifyWitnessed checks that the chain
// still holds each of them.

// VerifyWitnessed is Verify, then a check of the chain against checkpoints
// a witness kept: each must be signed by pub (else an error: it is not a
// witness of this store), and the record at its seq must still be there
// with the chain hash it signed. A checkpoint past the log's end is
// reported as records Removed (the log cut together with the checkpoints
// that signed its tail); one the chain no longer matches as Altered (the
// chain rewritten and signed again, which needs the signing key), as are
// two that sign different heads for one seq. A checkpoint at the anchor's
// predecessor is checked against the anchor; one below it is skipped:
// Prune removed those records and signed the anchor. Report.Witnessed is
// the largest seq a witnessed checkpoint confirmed.
func VerifyWitnessed(ctx context.Context, s *Store, pub ed25519.PublicKey, witnessed []Checkpoint) (Report, error) {
	for _, c := range witnessed {
		if !c.Valid(pub) {
			return Report{}, fmt.Errorf("%w: the witnessed checkpoint at %d (%s) is not signed by this store's key",
				ErrWitness, c.Seq, c.Time.Format(time.RFC3339))
		}
	}
	rep, err := Verify(ctx, s, pub)
	if err != nil || !rep.OK() || len(witnessed) == 0 {
		return rep, err
	}
	var anchor *Anchor
	if rep.Anchored {
		if anchor, err = readAnchor(s.anchorPath()); err != nil {
			return rep, err
		}
	}
	cks := slices.SortedFunc(slices.Values(witnessed), func(a, b Checkpoint) int { return cmp.Compare(a.Seq, b.Seq) })
	lo := rep.First // damage found through a witness lies after the last one that held
	for group := range chunkBySeq(cks) {
		seq, signed := group[0].Seq, group[0].Time.Format(time.RFC3339)
		var head Hash
		switch {
		case anchor != nil && seq+1 == anchor.Seq:
			head = anchor.Prev
		case seq < rep.First:
			continue
		case seq > rep.Last:
			end := max(rep.Last, rep.First-1) // a prune of everything kept no record: the chain ends below the anchor
			rep.Problem = &Problem{Seq: max(end+1, lo), Through: seq, Kind: Removed, Detail: fmt.Sprintf(
				"the log ends at record %d, but a checkpoint signed %s that a witness kept covers records up to %d: they were removed with the checkpoints that signed them",
				end, signed, seq)}
			return rep, nil
		default:
			e, err := s.Get(ctx, seq)
			if errors.Is(err, ErrNotFound) {
				continue // pruned since Verify looked
			}
			if err != nil {
				return rep, err
			}
			head = e.Hash
		}
		for _, c := range group {
			if c.Head != head {
				rep.Problem = &Problem{Seq: lo, Through: seq, Kind: Altered, Detail: fmt.Sprintf(
					"the chain at record %d is not the one a checkpoint signed %s (kept by a witness) covers: records up to it were rewritten and signed again",
					seq, c.Time.Format(time.RFC3339))}
				return rep, nil
			}
		}
		rep.Witnessed, lo = max(rep.Witnessed, seq), max(lo, seq+1)
	}
	return rep, nil
}

// chunkBySeq yields the runs of checkpoints (sorted by seq) of one seq.
func chunkBySeq(cks []Checkpoint) func(yield func([]Checkpoint) bool) {
	return func(yield func([]Checkpoint) bool) {
		for i := 0; i < len(cks); {
			j := i + 1
			for j < len(cks) && cks[j].Seq == cks[i].Seq {
				j++
			}
			if !yield(cks[i:j]) {
				return
			}
			i = j
		}
	}
}

// ErrWitness is returned for witnessed checkpoints that cannot be used.
var ErrWitness = errors.New("audit: witness")

// ReadWitnessed reads the checkpoints a witness kept: a stream of JSON
// values (one document, several, JSON Lines, or arrays of them), each a
// checkpoint ({"seq","head","time","sig"}) or a document that holds one
// under "checkpoint" — what GET /admin/audit/head and a record's proof
// answer. A head answer from before the store's first checkpoint (no
// "checkpoint") holds nothing and is passed over; any other value that is
// neither is an error naming it.
func ReadWitnessed(r io.Reader) ([]Checkpoint, error) {
	dec := json.NewDecoder(r)
	var out []Checkpoint
	for n := 1; ; n++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err == io.EOF {
			if len(out) == 0 {
				return nil, fmt.Errorf("%w: no checkpoint in it", ErrWitness)
			}
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("%w: value %d: %v", ErrWitness, n, err)
		}
		vals := []json.RawMessage{raw}
		if bytes.HasPrefix(raw, []byte("[")) {
			if err := json.Unmarshal(raw, &vals); err != nil {
				return nil, fmt.Errorf("%w: value %d: %v", ErrWitness, n, err)
			}
		}
		for _, v := range vals {
			c, ok, err := witnessedCheckpoint(v)
			if err != nil {
				return nil, fmt.Errorf("%w: value %d: %v", ErrWitness, n, err)
			}
			if ok {
				out = append(out, c)
			}
		}
	}
}

func witnessedCheckpoint(v json.RawMessage) (Checkpoint, bool, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(v, &fields); err != nil {
		return Checkpoint{}, false, err
	}
	inner, hasCk := fields["checkpoint"]
	_, hasSig := fields["sig"]
	_, hasKey := fields["publicKey"]
	switch {
	case hasCk:
		v = inner
	case hasKey && !hasSig:
		return Checkpoint{}, false, nil // a head answer before the first checkpoint
	case !hasSig:
		return Checkpoint{}, false, errors.New(`neither a signed checkpoint nor a document with one under "checkpoint"`)
	}
	var c Checkpoint
	if err := json.Unmarshal(v, &c); err != nil {
		return Checkpoint{}, false, err
	}
	if c.Seq == 0 || len(c.Signature) == 0 {
		return Checkpoint{}, false, errors.New("a checkpoint without a seq or a signature")
	}
	return c, true, nil
}
