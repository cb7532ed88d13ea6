package audit

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"time"
)

// An entry is what a log frame carries for one seq:
//
//	format (1 byte) | prev h(seq-1) (32) | hash h(seq) (32) | body
//
// format 1: body is the record bytes, d(seq) = SHA-256(body).
// format 3 (redacted by retention): body is d(seq) (32) | time (8, Unix ns)
// | signature (64) | service name; the record is gone but the chain still
// verifies, and the signature (RedactionMessage, the store's key) shows
// the store's Prune erased it, not someone with access to the files.
// format 2: format 3 without the signature, as Prune wrote it before
// redactions were signed and the Badger store kept it under "r" seq (a
// migrated entry is copied byte for byte); Verify counts these apart.
const (
	entryFull           = 1
	entryRedacted       = 2
	entryRedactedSigned = 3
	entryHead           = 1 + 32 + 32
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
	sig      []byte // a signed redaction's signature (format 3)
}

var errBadEntry = errors.New("malformed entry")

func appendEntry(dst []byte, prev, hash Hash, record []byte) []byte {
	dst = append(dst, entryFull)
	dst = append(dst, prev[:]...)
	dst = append(dst, hash[:]...)
	return append(dst, record...)
}

// redactedEntry is e's redaction stub: format 3 if e.sig is set, else 2.
func redactedEntry(e *entry) []byte {
	v := make([]byte, 0, entryHead+32+8+len(e.sig)+len(e.service))
	v = append(v, entryRedacted)
	if e.sig != nil {
		v[0] = entryRedactedSigned
	}
	v = append(v, e.prev[:]...)
	v = append(v, e.hash[:]...)
	v = append(v, e.digest[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(e.time.UnixNano()))
	v = append(v, e.sig...)
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
	case entryRedacted, entryRedactedSigned:
		n := 40
		if v[0] == entryRedactedSigned {
			n += ed25519.SignatureSize
		}
		if len(body) < n {
			return e, errBadEntry
		}
		e.redacted = true
		copy(e.digest[:], body[:32])
		e.time = time.Unix(0, int64(binary.BigEndian.Uint64(body[32:40]))).UTC()
		if n > 40 {
			e.sig = body[40:n]
		}
		e.service = string(body[n:])
	default:
		return e, errBadEntry
	}
	return e, nil
}

// Secondary index terms: 64-bit FNV-1a hashes of (field, value). A
// collision only costs a record read: every query result is re-checked
// against the record (Query.matches, outcomeOf).
const (
	fOrg     = 'o'
	fService = 's'
	fTrace   = 't'
	fSubject = 'p'
	fLink    = 'x' // an outcome under its request's seq (8 bytes, BE)
)

func termOf(field byte, val string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	h = (h ^ uint64(field)) * prime
	for i := 0; i < len(val); i++ {
		h = (h ^ uint64(val[i])) * prime
	}
	return h
}

func linkTerm(requestSeq uint64) uint64 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], requestSeq)
	return termOf(fLink, string(b[:]))
}

// indexTerms lists what a record is indexed under: organisation, service,
// subject pseudonym, every trace id, and for an outcome the link from its
// request. The writer uses it on the caller's Record, the index rebuild on
// the decoded one: callers pass strings through validUTF8 first, so both
// derive the same terms.
func indexTerms(r *Record) []uint64 { return appendIndexTerms(nil, r) }

// appendIndexTerms appends r's index terms to ts.
func appendIndexTerms(ts []uint64, r *Record) []uint64 {
	add := func(f byte, v string) {
		if v == "" {
			return
		}
		t := termOf(f, v)
		for _, x := range ts {
			if x == t {
				return
			}
		}
		ts = append(ts, t)
	}
	add(fOrg, r.Organisation)
	add(fService, r.Service)
	add(fSubject, r.Subject)
	add(fTrace, r.TraceIn)
	add(fTrace, r.TraceOut)
	for _, s := range r.Sources {
		add(fTrace, s.TraceID)
		add(fTrace, s.SourceTrace)
		add(fSubject, s.Subject) // whom the call consulted, if not r.Subject
	}
	if r.Kind == KindOutcome && r.Request != 0 {
		ts = append(ts, linkTerm(r.Request))
	}
	return ts
}

// The Badger store's checkpoint and anchor values (migration only):
// seq (8) | head or prev (32) | time (8, Unix ns) | signature.
func decodeBadgerCheckpoint(v []byte) (Checkpoint, bool) {
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
