package audit

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Entry is a stored record with its place in the chain.
type Entry struct {
	Seq  uint64 `json:"seq"`
	Prev Hash   `json:"prev"`
	Hash Hash   `json:"hash"`
	// Raw is the exact stored bytes (SHA-256 of Raw is the record digest);
	// nil when retention redacted the record.
	Raw      []byte `json:"-"`
	Record   Record `json:"record"`
	Redacted bool   `json:"redacted,omitempty"`
}

// ErrNotFound means no record has that seq (never written, or pruned).
var ErrNotFound = errors.New("audit: no such record")

// Get returns the record seq.
func (s *Store) Get(ctx context.Context, seq uint64) (Entry, error) {
	var out Entry
	err := s.view(func(txn *badger.Txn) error {
		var err error
		out, err = getEntry(txn, seq)
		return err
	})
	return out, err
}

func getEntry(txn *badger.Txn, seq uint64) (Entry, error) {
	it, err := txn.Get(seqKey(pRecord, seq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return Entry{}, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	if err != nil {
		return Entry{}, err
	}
	v, err := it.ValueCopy(nil)
	if err != nil {
		return Entry{}, err
	}
	return entryOf(seq, v)
}

func entryOf(seq uint64, v []byte) (Entry, error) {
	e, err := parseEntry(seq, v)
	if err != nil {
		return Entry{}, fmt.Errorf("audit: record %d: %w", seq, err)
	}
	out := Entry{Seq: seq, Prev: e.prev, Hash: e.hash, Raw: e.record, Redacted: e.redacted}
	if e.redacted {
		out.Record = Record{Seq: seq, Time: e.time, Service: e.service}
		return out, nil
	}
	out.Record, err = Decode(e.record)
	if err != nil {
		return Entry{}, fmt.Errorf("audit: record %d: %w", seq, err)
	}
	return out, nil
}

// Query selects records. Filters combine with AND; the most selective one
// present (trace, subject, organisation, service) drives an index scan and
// the time range narrows it to a seq range (record time grows with seq).
type Query struct {
	TraceID      string // matches traceIn, traceOut and every source trace id
	Organisation string
	Service      string
	Subject      string // in clear: looked up through its pseudonyms under every subject key
	Kinds        []Kind // empty: all
	From, To     time.Time
	Desc         bool   // newest first
	Limit        int    // default 100, at most 1000
	Cursor       string // Page.Next of the previous page
}

// Page is one page of results; Next is empty on the last page.
type Page struct {
	Entries []Entry `json:"entries"`
	Next    string  `json:"next,omitempty"`
}

// Query returns the records matching q, one page at a time.
func (s *Store) Query(ctx context.Context, q Query) (Page, error) {
	limit := q.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	var pseudonyms []string
	if q.Subject != "" {
		if len(s.opt.SubjectKeys) == 0 {
			return Page{}, errors.New("audit: a subject query needs Options.SubjectKeys")
		}
		for _, k := range s.opt.SubjectKeys {
			pseudonyms = append(pseudonyms, Pseudonym(k, q.Subject))
		}
	}
	var page Page
	err := s.view(func(txn *badger.Txn) error {
		lo, hi, err := seqRange(txn, q.From, q.To)
		if err != nil || lo > hi {
			return err
		}
		if q.Cursor != "" {
			c, err := strconv.ParseUint(q.Cursor, 10, 64)
			if err != nil {
				return fmt.Errorf("audit: bad cursor %q", q.Cursor)
			}
			if q.Desc {
				if c == 0 {
					return nil
				}
				hi = min(hi, c-1)
			} else {
				lo = max(lo, c+1)
			}
		}
		var prefixes [][]byte
		gap := s.gap // outcomes are found through their requests' keys
		switch {
		case q.TraceID != "":
			prefixes = [][]byte{indexPrefix(fTrace, q.TraceID)}
		case len(pseudonyms) > 0:
			for _, p := range pseudonyms {
				prefixes = append(prefixes, indexPrefix(fSubject, p))
			}
			gap = 0 // outcomes carry no subject
		case q.Organisation != "":
			prefixes = [][]byte{indexPrefix(fOrg, q.Organisation)}
		case q.Service != "":
			prefixes = [][]byte{indexPrefix(fService, q.Service)}
		default:
			prefixes, gap = [][]byte{{pRecord}}, 0
		}
		if len(q.Kinds) > 0 && !slices.Contains(q.Kinds, KindOutcome) {
			gap = 0
		}
		st := newCallSeqs(txn, prefixes, lo, hi, q.Desc, gap)
		defer st.close()
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			seq, ok, err := st.next()
			if err != nil {
				return err
			}
			if !ok {
				return nil
			}
			if len(page.Entries) == limit {
				page.Next = strconv.FormatUint(page.Entries[limit-1].Seq, 10)
				return nil
			}
			e, err := getEntry(txn, seq)
			if errors.Is(err, ErrNotFound) {
				continue // index left over by an interrupted prune
			}
			if err != nil {
				return err
			}
			if e.Redacted || !q.matches(&e.Record, pseudonyms) {
				continue
			}
			page.Entries = append(page.Entries, e)
		}
	})
	return page, err
}

func (q *Query) matches(r *Record, pseudonyms []string) bool {
	if q.Organisation != "" && r.Organisation != q.Organisation ||
		q.Service != "" && r.Service != q.Service ||
		len(q.Kinds) > 0 && !slices.Contains(q.Kinds, r.Kind) ||
		len(pseudonyms) > 0 && !slices.Contains(pseudonyms, r.Subject) ||
		!q.From.IsZero() && r.Time.Before(q.From) ||
		!q.To.IsZero() && !r.Time.Before(q.To) {
		return false
	}
	if q.TraceID != "" {
		hit := r.TraceIn == q.TraceID || r.TraceOut == q.TraceID
		for _, s := range r.Sources {
			hit = hit || s.TraceID == q.TraceID || s.SourceTrace == q.TraceID
		}
		return hit
	}
	return true
}

// ConsumerQuery is Query limited to the records of one organisation's own
// calls: what a consumer may read through its own API.
func (s *Store) ConsumerQuery(ctx context.Context, organisation string, q Query) (Page, error) {
	if organisation == "" {
		return Page{}, errors.New("audit: a consumer query needs the consumer's organisation")
	}
	q.Organisation = organisation
	return s.Query(ctx, q)
}

// Consultation is one answer of the citizen view: who consulted data about
// the subject, when, through which service, and why.
type Consultation struct {
	Time           time.Time `json:"time"`
	Organisation   string    `json:"organisation"`
	Application    string    `json:"application,omitempty"`
	Service        string    `json:"service"`
	ServiceVersion string    `json:"serviceVersion,omitempty"`
	Purpose        string    `json:"purpose,omitempty"`
	LegalBasis     string    `json:"legalBasis,omitempty"`
	Status         int       `json:"status,omitempty"` // the answer's status; 0 if no outcome was recorded
	Seq            uint64    `json:"seq"`
}

// ConsultationPage is one page of the citizen view.
type ConsultationPage struct {
	Consultations []Consultation `json:"consultations"`
	Next          string         `json:"next,omitempty"`
}

// Consultations answers the citizen view for subject (in clear): the
// allowed calls about them, newest first (q's Subject, Kinds and Desc are
// overridden; its time range, Limit and Cursor apply).
// Refused calls released nothing and are left out.
func (s *Store) Consultations(ctx context.Context, subject string, q Query) (ConsultationPage, error) {
	if subject == "" {
		return ConsultationPage{}, errors.New("audit: the citizen view needs a subject")
	}
	q.Subject, q.Kinds, q.Desc = subject, []Kind{KindRequest}, true
	p, err := s.Query(ctx, q)
	if err != nil {
		return ConsultationPage{}, err
	}
	out := ConsultationPage{Next: p.Next, Consultations: []Consultation{}}
	err = s.view(func(txn *badger.Txn) error {
		for _, e := range p.Entries {
			r := &e.Record
			c := Consultation{Time: r.Time, Organisation: r.Organisation, Application: r.Application,
				Service: r.Service, ServiceVersion: r.ServiceVersion, Purpose: r.Purpose,
				LegalBasis: r.LegalBasis, Seq: e.Seq}
			if o, ok, err := outcomeOf(txn, e.Seq); err != nil {
				return err
			} else if ok {
				c.Status = o.Record.Status
			}
			out.Consultations = append(out.Consultations, c)
		}
		return nil
	})
	return out, err
}

// Outcome returns the outcome record of the call whose request record is
// requestSeq (ok false if none was recorded).
func (s *Store) Outcome(ctx context.Context, requestSeq uint64) (e Entry, ok bool, err error) {
	err = s.view(func(txn *badger.Txn) error {
		e, ok, err = outcomeOf(txn, requestSeq)
		return err
	})
	return e, ok, err
}

func outcomeOf(txn *badger.Txn, requestSeq uint64) (Entry, bool, error) {
	seq, ok, err := outcomeSeq(txn, requestSeq)
	if err != nil || !ok {
		return Entry{}, false, err
	}
	e, err := getEntry(txn, seq)
	if errors.Is(err, ErrNotFound) {
		return Entry{}, false, nil
	}
	return e, err == nil && !e.Redacted, err
}

// outcomeSeq follows the outcome link of a request record.
func outcomeSeq(txn *badger.Txn, requestSeq uint64) (uint64, bool, error) {
	it, err := txn.Get(seqKey(pOutcome, requestSeq))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var seq uint64
	var ok bool
	err = it.Value(func(v []byte) error {
		if len(v) == 8 {
			seq, ok = binary.BigEndian.Uint64(v), true
		}
		return nil
	})
	return seq, ok, err
}

// seqRange turns a time range into the seq range holding it, by binary
// search over the records (their time never decreases with seq).
func seqRange(txn *badger.Txn, from, to time.Time) (lo, hi uint64, err error) {
	first, last, ok, err := bounds(txn)
	if err != nil || !ok {
		return 1, 0, err
	}
	lo, hi = first, last
	// firstAtOrAfter returns the first seq in [first, last+1] with time >= t.
	firstAtOrAfter := func(t time.Time) (uint64, error) {
		a, b := first, last+1
		for a < b {
			m := a + (b-a)/2
			mt, err := timeAt(txn, m)
			if err != nil {
				return 0, err
			}
			if mt.Before(t) {
				a = m + 1
			} else {
				b = m
			}
		}
		return a, nil
	}
	if !from.IsZero() {
		if lo, err = firstAtOrAfter(from); err != nil {
			return 0, 0, err
		}
	}
	if !to.IsZero() {
		e, err := firstAtOrAfter(to)
		if err != nil {
			return 0, 0, err
		}
		if e == 0 {
			return 1, 0, nil
		}
		hi = e - 1
	}
	return lo, hi, nil
}

// timeAt is the time of record seq; a missing record (damage Verify will
// name) counts as the time of the nearest record after it.
func timeAt(txn *badger.Txn, seq uint64) (time.Time, error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pRecord}, PrefetchValues: false})
	defer it.Close()
	it.Seek(seqKey(pRecord, seq))
	if !it.Valid() {
		return time.Unix(1<<40, 0), nil
	}
	k := it.Item().KeyCopy(nil)
	n, _ := keySeq(k)
	v, err := it.Item().ValueCopy(nil)
	if err != nil {
		return time.Time{}, err
	}
	e, err := parseEntry(n, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("audit: record %d: %w", n, err)
	}
	return e.time, nil
}

// bounds returns the first and last stored seq.
func bounds(txn *badger.Txn) (first, last uint64, ok bool, err error) {
	it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{pRecord}, PrefetchValues: false})
	it.Rewind()
	if it.Valid() {
		first, ok = keySeq(it.Item().Key())
	}
	it.Close()
	if !ok {
		return 0, 0, false, nil
	}
	e, found, err := lastEntry(txn)
	if err != nil || !found {
		return 0, 0, false, err
	}
	return first, e.seq, true, nil
}

// mergedSeqs walks index prefixes (or the record space) within [lo, hi]
// and yields their seqs in order, without duplicates.
type mergedSeqs struct {
	its  []*badger.Iterator
	pfx  [][]byte
	lo   uint64
	hi   uint64
	desc bool
	last uint64
	any  bool
}

func newMergedSeqs(txn *badger.Txn, prefixes [][]byte, lo, hi uint64, desc bool) *mergedSeqs {
	m := &mergedSeqs{pfx: prefixes, lo: lo, hi: hi, desc: desc}
	for _, p := range prefixes {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: p, Reverse: desc, PrefetchValues: false})
		if desc {
			it.Seek(binary.BigEndian.AppendUint64(slices.Clone(p), hi))
		} else {
			it.Seek(binary.BigEndian.AppendUint64(slices.Clone(p), lo))
		}
		m.its = append(m.its, it)
	}
	return m
}

func (m *mergedSeqs) seqOf(i int) (uint64, bool) {
	it := m.its[i]
	for it.Valid() {
		k := it.Item().Key()
		if len(k) == len(m.pfx[i])+8 {
			return binary.BigEndian.Uint64(k[len(k)-8:]), true
		}
		it.Next() // a longer value sharing the prefix bytes: not ours
	}
	return 0, false
}

func (m *mergedSeqs) next() (uint64, bool) {
	for {
		best, bi := uint64(0), -1
		for i := range m.its {
			s, ok := m.seqOf(i)
			if !ok {
				continue
			}
			if bi < 0 || (!m.desc && s < best) || (m.desc && s > best) {
				best, bi = s, i
			}
		}
		if bi < 0 {
			return 0, false
		}
		m.its[bi].Next()
		if best < m.lo || best > m.hi {
			return 0, false
		}
		if m.any && best == m.last {
			continue
		}
		m.any, m.last = true, best
		return best, true
	}
}

func (m *mergedSeqs) close() {
	for _, it := range m.its {
		it.Close()
	}
}

// callSeqs yields, in order and without duplicates, the seqs in [lo, hi]
// of the records an index scan finds: each hit and, with gap > 0, the
// outcome a hit stands for when the outcome was written at most gap
// records after its request (index layout 2, keys.go: such an outcome has
// no index keys of the request's terms). Ascending, the scan starts gap
// records before lo, so an outcome in range whose request is not is found;
// descending, it reads gap records ahead of what it yields, since a
// request read later may have an outcome larger than the seq at hand.
// An outcome also indexed itself (layout 1, or materialised by Prune) is
// found twice and yielded once.
type callSeqs struct {
	txn    *badger.Txn
	hits   *mergedSeqs
	lo, hi uint64
	desc   bool
	gap    uint64
	peek   uint64 // the next hit, if more
	more   bool
	ready  []uint64 // candidates, sorted so that the next to yield is last
	last   uint64
	any    bool
}

func newCallSeqs(txn *badger.Txn, prefixes [][]byte, lo, hi uint64, desc bool, gap uint64) *callSeqs {
	c := &callSeqs{txn: txn, lo: lo, hi: hi, desc: desc, gap: gap}
	c.hits = newMergedSeqs(txn, prefixes, lo-min(lo, gap), hi, desc)
	c.peek, c.more = c.hits.next()
	return c
}

func (c *callSeqs) next() (uint64, bool, error) {
	for {
		if n := len(c.ready); n > 0 {
			top := c.ready[n-1]
			// Safe to yield once no hit still to read can produce a seq
			// before it: ascending, every later hit and its outcome are
			// larger than the next hit; descending, at most gap above it.
			if !c.more || (!c.desc && c.peek > top) || (c.desc && c.peek+c.gap < top) {
				c.ready = c.ready[:n-1]
				if c.any && top == c.last {
					continue
				}
				c.any, c.last = true, top
				return top, true, nil
			}
		} else if !c.more {
			return 0, false, nil
		}
		h := c.peek
		c.peek, c.more = c.hits.next()
		if h >= c.lo && h <= c.hi {
			c.push(h)
		}
		if c.gap > 0 {
			o, ok, err := outcomeSeq(c.txn, h)
			if err != nil {
				return 0, false, err
			}
			if ok && o > h && o-h <= c.gap && o >= c.lo && o <= c.hi {
				c.push(o)
			}
		}
	}
}

func (c *callSeqs) push(seq uint64) {
	i, _ := slices.BinarySearchFunc(c.ready, seq, func(a, b uint64) int {
		if c.desc {
			return cmp.Compare(a, b)
		}
		return cmp.Compare(b, a)
	})
	c.ready = slices.Insert(c.ready, i, seq)
}

func (c *callSeqs) close() { c.hits.close() }
