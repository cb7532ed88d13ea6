package audit

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Badger key layout (one byte prefix, integers big-endian so keys sort by seq):
//
//	r seq            entry: the record with its chain link (see entry)
//	c seq            signed checkpoint of the head at seq
//	a                signed anchor of the first kept record (after pruning)
//	i f len val seq  secondary index, empty value; f: o org, s service,
//	                 t trace id, p subject pseudonym; len is a uvarint
//	x seq            outcome link: request seq -> outcome seq (8 bytes)
//	m                index layout: version (1 byte) | outcome gap (8 bytes)
//
// Index layout 2 (the marker m, written when a writable store is first
// opened by this code): an outcome record whose seq is at most the marker's
// gap after its request's is not indexed under the terms it shares with the
// request (organisation, service, trace in and out, which Finish copies
// from the request): queries find it through the request's index key and
// the x link. A later outcome, and every term of its own (source trace
// ids), is indexed as before. Layout 1 (no marker: stores written before)
// indexed every record under all its terms; queries read both, a store may
// hold both, and an outcome found twice is yielded once.
const (
	pRecord     = 'r'
	pCheckpoint = 'c'
	pAnchor     = 'a'
	pIndex      = 'i'
	pOutcome    = 'x'
	pLayout     = 'm'

	fOrg     = 'o'
	fService = 's'
	fTrace   = 't'
	fSubject = 'p'
)

func seqKey(prefix byte, seq uint64) []byte {
	k := make([]byte, 9)
	k[0] = prefix
	binary.BigEndian.PutUint64(k[1:], seq)
	return k
}

func keySeq(k []byte) (uint64, bool) {
	if len(k) != 9 {
		return 0, false
	}
	return binary.BigEndian.Uint64(k[1:]), true
}

var (
	anchorKey = []byte{pAnchor}
	layoutKey = []byte{pLayout}
)

// layoutShared is index layout 2; defaultOutcomeGap is the gap a new store
// records in its marker (a variable for tests). It bounds how far before a
// query's seq range a scan starts to find outcomes through their requests,
// and how far ahead a newest-first scan reads: 1024 records is far more
// than the calls in flight at once (about twice the concurrent calls
// separate a request from its outcome).
const layoutShared = 2

var defaultOutcomeGap uint64 = 1024

func encodeLayout(gap uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{layoutShared}, gap)
}

// decodeLayout returns the outcome gap of a layout marker; 0 means every
// record is indexed under all its terms.
func decodeLayout(v []byte) (uint64, error) {
	if len(v) != 9 || v[0] != layoutShared {
		return 0, fmt.Errorf("unknown index layout %x", v)
	}
	return binary.BigEndian.Uint64(v[1:]), nil
}

// indexPrefix is i f len val; an index key appends the seq.
func indexPrefix(field byte, val string) []byte {
	k := make([]byte, 0, 2+binary.MaxVarintLen64+len(val)+8)
	k = append(k, pIndex, field)
	k = binary.AppendUvarint(k, uint64(len(val)))
	return append(k, val...)
}

func indexKey(field byte, val string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(indexPrefix(field, val), seq)
}

// term is one secondary index entry of a record, without its seq.
type term struct {
	field byte
	val   string
	// shared: an outcome has this term because its request has it (Finish
	// copies organisation, service and trace ids from the request).
	shared bool
}

// indexTerms lists what a record is indexed under. The writer uses it on
// the caller's Record, pruning on the decoded one: callers pass strings
// through validUTF8 first, so both derive the same keys.
func indexTerms(r *Record) []term {
	ts := make([]term, 0, 6)
	add := func(f byte, v string, shared bool) {
		if v == "" {
			return
		}
		for _, t := range ts {
			if t.field == f && t.val == v {
				return
			}
		}
		ts = append(ts, term{f, v, shared})
	}
	add(fOrg, r.Organisation, true)
	add(fService, r.Service, true)
	add(fSubject, r.Subject, false)
	add(fTrace, r.TraceIn, true)
	add(fTrace, r.TraceOut, true)
	for _, s := range r.Sources {
		add(fTrace, s.TraceID, false)
		add(fTrace, s.SourceTrace, false)
	}
	return ts
}

// indexKeys lists every secondary key a stored record may have, in either
// layout (an outcome's shared terms too); pruning removes those that exist.
func indexKeys(r *Record) [][]byte {
	var ks [][]byte
	for _, t := range indexTerms(r) {
		ks = append(ks, indexKey(t.field, t.val, r.Seq))
	}
	if r.Kind == KindOutcome && r.Request != 0 {
		ks = append(ks, seqKey(pOutcome, r.Request))
	}
	return ks
}

// An entry is the value under r seq:
//
//	format (1 byte) | prev h(seq-1) (32) | hash h(seq) (32) | body
//
// format 1: body is the record bytes, d(seq) = SHA-256(body).
// format 2 (redacted by retention): body is d(seq) (32) | time (8, Unix ns)
// | service name; the record is gone but the chain still verifies.
const (
	entryFull     = 1
	entryRedacted = 2
	entryHead     = 1 + 32 + 32
)

type entry struct {
	seq      uint64
	prev     Hash
	hash     Hash
	digest   Hash
	record   []byte // nil when redacted
	redacted bool
	time     time.Time
	service  string // redacted entries only
}

var errBadEntry = errors.New("malformed entry")

func appendEntry(dst []byte, prev, hash Hash, record []byte) []byte {
	dst = append(dst, entryFull)
	dst = append(dst, prev[:]...)
	dst = append(dst, hash[:]...)
	return append(dst, record...)
}

func redactedEntry(e *entry) []byte {
	v := make([]byte, 0, entryHead+32+8+len(e.service))
	v = append(v, entryRedacted)
	v = append(v, e.prev[:]...)
	v = append(v, e.hash[:]...)
	v = append(v, e.digest[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(e.time.UnixNano()))
	return append(v, e.service...)
}

// parseEntry reads an entry; record aliases v.
func parseEntry(seq uint64, v []byte) (entry, error) {
	e := entry{seq: seq}
	if len(v) < entryHead {
		return e, errBadEntry
	}
	copy(e.prev[:], v[1:33])
	copy(e.hash[:], v[33:65])
	body := v[entryHead:]
	switch v[0] {
	case entryFull:
		e.record = body
		e.digest = recordDigest(body)
		if _, _, ts, ok := parseFrame(body); ok {
			e.time, _ = time.Parse(time.RFC3339Nano, ts)
		}
	case entryRedacted:
		if len(body) < 40 {
			return e, errBadEntry
		}
		e.redacted = true
		copy(e.digest[:], body[:32])
		e.time = time.Unix(0, int64(binary.BigEndian.Uint64(body[32:40]))).UTC()
		e.service = string(body[40:])
	default:
		return e, errBadEntry
	}
	return e, nil
}

// checkpoint value: seq (8) | head (32) | time (8, Unix ns) | signature.
func encodeCheckpoint(c Checkpoint) []byte {
	v := binary.BigEndian.AppendUint64(nil, c.Seq)
	v = append(v, c.Head[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(c.Time.UnixNano()))
	return append(v, c.Signature...)
}

func decodeCheckpoint(v []byte) (Checkpoint, bool) {
	if len(v) < 48 {
		return Checkpoint{}, false
	}
	var c Checkpoint
	c.Seq = binary.BigEndian.Uint64(v)
	copy(c.Head[:], v[8:40])
	c.Time = time.Unix(0, int64(binary.BigEndian.Uint64(v[40:48]))).UTC()
	c.Signature = append([]byte(nil), v[48:]...)
	return c, true
}

// The anchor value has the checkpoint layout with prev in place of head.
func encodeAnchor(a Anchor) []byte {
	return encodeCheckpoint(Checkpoint{Seq: a.Seq, Head: a.Prev, Time: a.Time, Signature: a.Signature})
}

func decodeAnchor(v []byte) (Anchor, bool) {
	c, ok := decodeCheckpoint(v)
	return Anchor{Seq: c.Seq, Prev: c.Head, Time: c.Time, Signature: c.Signature}, ok
}
