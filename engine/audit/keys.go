package audit

import (
	"encoding/binary"
	"errors"
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
const (
	pRecord     = 'r'
	pCheckpoint = 'c'
	pAnchor     = 'a'
	pIndex      = 'i'
	pOutcome    = 'x'

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

var anchorKey = []byte{pAnchor}

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
}

// indexTerms lists what a record is indexed under. The writer uses it on
// the caller's Record, pruning on the decoded one: callers pass strings
// through validUTF8 first, so both derive the same keys.
func indexTerms(r *Record) []term {
	ts := make([]term, 0, 6)
	add := func(f byte, v string) {
		if v == "" {
			return
		}
		for _, t := range ts {
			if t.field == f && t.val == v {
				return
			}
		}
		ts = append(ts, term{f, v})
	}
	add(fOrg, r.Organisation)
	add(fService, r.Service)
	add(fSubject, r.Subject)
	add(fTrace, r.TraceIn)
	add(fTrace, r.TraceOut)
	for _, s := range r.Sources {
		add(fTrace, s.TraceID)
		add(fTrace, s.SourceTrace)
	}
	return ts
}

// indexKeys lists every secondary key of a stored record; pruning removes
// exactly these.
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
