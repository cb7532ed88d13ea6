package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/openfsb/fsb/engine/audit/internal/termindex"
)

// Entry is a stored record with its place in the chain.
//
// In JSON (the admin and consumer APIs, fsb audit query) "record" is the
// record exactly as stored — the bytes whose SHA-256 the chain links
// (Hash = SHA-256(Prev ‖ SHA-256(record)), as in a Proof) — so a reader
// can check what they read against the chain; a redacted entry's "record"
// is what is left of it (seq, time, service).
type Entry struct {
	Seq  uint64
	Prev Hash
	Hash Hash
	// Raw is the exact stored bytes (SHA-256 of Raw is the record digest);
	// nil when retention redacted the record.
	Raw      []byte
	Record   Record
	Redacted bool
}

// entryJSON is Entry on the wire.
type entryJSON struct {
	Seq      uint64          `json:"seq"`
	Prev     Hash            `json:"prev"`
	Hash     Hash            `json:"hash"`
	Record   json.RawMessage `json:"record"`
	Redacted bool            `json:"redacted,omitempty"`
}

// MarshalJSON writes the stored bytes as "record" (see Entry).
func (e Entry) MarshalJSON() ([]byte, error) {
	w := entryJSON{Seq: e.Seq, Prev: e.Prev, Hash: e.Hash, Record: e.Raw, Redacted: e.Redacted}
	if e.Raw == nil {
		b, err := json.Marshal(&e.Record)
		if err != nil {
			return nil, err
		}
		w.Record = b
	}
	return json.Marshal(&w)
}

// UnmarshalJSON reads what MarshalJSON writes: Raw is the stored bytes,
// Record their decoding. A record of a version this package does not know
// (a newer server's) keeps its bytes, and its Record only V and Seq.
func (e *Entry) UnmarshalJSON(b []byte) error {
	var w entryJSON
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*e = Entry{Seq: w.Seq, Prev: w.Prev, Hash: w.Hash, Redacted: w.Redacted}
	if w.Redacted {
		return json.Unmarshal(w.Record, &e.Record)
	}
	e.Raw = bytes.Clone(w.Record)
	r, err := Decode(w.Record)
	if errors.Is(err, ErrUnknownVersion) {
		v, seq, _, _ := parseFrame(w.Record)
		e.Record = Record{V: v, Seq: seq}
		return nil
	}
	e.Record = r
	return err
}

// ErrNotFound means no record has that seq (never written, or pruned).
var ErrNotFound = errors.New("audit: no such record")

// Get returns the record seq.
func (s *Store) Get(ctx context.Context, seq uint64) (Entry, error) {
	if s.closed.Load() {
		return Entry{}, ErrClosed
	}
	return s.getEntry(seq)
}

func (s *Store) getEntry(seq uint64) (Entry, error) {
	s.mu.Lock()
	first, last := s.pubw.first, s.pubw.seq
	s.mu.Unlock()
	if seq < first || seq > last {
		return Entry{}, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	v, err := s.lg.read(seq)
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
	if s.closed.Load() {
		return Page{}, ErrClosed
	}
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
		pseudonyms = s.pseudonyms(q.Subject)
	}
	var page Page
	lo, hi, err := s.seqRange(q.From, q.To)
	if err != nil || lo > hi {
		return page, err
	}
	if q.Cursor != "" {
		c, err := strconv.ParseUint(q.Cursor, 10, 64)
		if err != nil {
			return page, fmt.Errorf("audit: bad cursor %q", q.Cursor)
		}
		if q.Desc {
			if c == 0 {
				return page, nil
			}
			hi = min(hi, c-1)
		} else {
			lo = max(lo, c+1)
		}
		if lo > hi {
			return page, nil
		}
	}
	var terms []uint64
	switch {
	case q.TraceID != "":
		terms = []uint64{termOf(fTrace, q.TraceID)}
	case len(pseudonyms) > 0:
		for _, p := range pseudonyms {
			terms = append(terms, termOf(fSubject, p))
		}
	case q.Organisation != "":
		terms = []uint64{termOf(fOrg, q.Organisation)}
	case q.Service != "":
		terms = []uint64{termOf(fService, q.Service)}
	}
	st := s.seqs(terms, lo, hi, q.Desc)
	defer st.close()
	for {
		if err := ctx.Err(); err != nil {
			return page, err
		}
		seq, ok, err := st.next()
		if err != nil {
			return page, err
		}
		if !ok {
			return page, nil
		}
		if len(page.Entries) == limit {
			page.Next = strconv.FormatUint(page.Entries[limit-1].Seq, 10)
			return page, nil
		}
		e, err := s.getEntry(seq)
		if errors.Is(err, ErrNotFound) {
			continue // pruned since
		}
		if err != nil {
			return page, err
		}
		if e.Redacted || !q.matches(&e.Record, pseudonyms) {
			continue
		}
		page.Entries = append(page.Entries, e)
	}
}

func (q *Query) matches(r *Record, pseudonyms []string) bool {
	if q.Organisation != "" && r.Organisation != q.Organisation ||
		q.Service != "" && r.Service != q.Service ||
		len(q.Kinds) > 0 && !slices.Contains(q.Kinds, r.Kind) ||
		len(pseudonyms) > 0 && !r.concerns(pseudonyms) ||
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

// concerns reports whether r names one of pseudonyms as its subject or as
// the subject of one of its source calls.
func (r *Record) concerns(pseudonyms []string) bool {
	return slices.Contains(pseudonyms, r.Subject) || r.subjectOfSource(pseudonyms)
}

// subjectOfSource reports whether one of r's source calls names one of
// pseudonyms.
func (r *Record) subjectOfSource(pseudonyms []string) bool {
	for _, s := range r.Sources {
		if s.Subject != "" && slices.Contains(pseudonyms, s.Subject) {
			return true
		}
	}
	return false
}

// through lists "source.operation" of r's source calls about one of
// pseudonyms that reached their source (a call an open circuit rejected
// has no attempt), each once (a retried call is recorded per attempt).
func (r *Record) through(pseudonyms []string) []string {
	var out []string
	for _, s := range r.Sources {
		op := s.Source + "." + s.Operation
		if s.Subject != "" && s.Attempts > 0 && slices.Contains(pseudonyms, s.Subject) && !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	return out
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
	// Seq and Time are those of the record that names the subject: the
	// request record of a call about them; for an indirect consultation the
	// outcome record (the source call ran between the call's request and
	// it), whose Request is the call's request record.
	Seq     uint64 `json:"seq"`
	Request uint64 `json:"request,omitempty"`
	// Through names the source calls ("source.operation") that consulted
	// the subject when the call was about someone else (an enterprise whose
	// directors were looked up): an indirect consultation.
	Through []string `json:"through,omitempty"`
	// Environment is "test" for a call served on the test endpoints (an
	// onboarding connection test), absent for production.
	Environment string `json:"environment,omitempty"`
}

// ConsultationPage is one page of the citizen view.
type ConsultationPage struct {
	Consultations []Consultation `json:"consultations"`
	Next          string         `json:"next,omitempty"`
}

// Consultations answers the citizen view for subject (in clear): the
// allowed calls about them, newest first (q's Subject, Kinds and Desc are
// overridden; its time range, Limit and Cursor apply). A call about
// someone else that consulted the subject through one of its source calls
// (a flow's call step names its subject) is listed too, with Through: it
// is placed by its outcome record, which names the subject and repeats the
// request's purpose and legal basis (so they survive a request record that
// retention removed first). Refused calls released nothing and are left
// out.
func (s *Store) Consultations(ctx context.Context, subject string, q Query) (ConsultationPage, error) {
	if subject == "" {
		return ConsultationPage{}, errors.New("audit: the citizen view needs a subject")
	}
	q.Subject, q.Kinds, q.Desc = subject, []Kind{KindRequest, KindOutcome}, true
	p, err := s.Query(ctx, q)
	if err != nil {
		return ConsultationPage{}, err
	}
	pseudonyms := s.pseudonyms(subject)
	out := ConsultationPage{Next: p.Next, Consultations: []Consultation{}}
	for _, e := range p.Entries {
		r := &e.Record
		c := Consultation{Time: r.Time, Organisation: r.Organisation, Application: r.Application,
			Service: r.Service, ServiceVersion: r.ServiceVersion, Purpose: r.Purpose,
			LegalBasis: r.LegalBasis, Environment: r.Environment, Seq: e.Seq}
		if r.Kind == KindOutcome {
			// An indirect consultation, unless the call was about the
			// subject anyway (then its request record is listed) or no
			// source call about them reached its source.
			if c.Through = r.through(pseudonyms); len(c.Through) == 0 {
				continue
			}
			req, err := s.getEntry(r.Request)
			switch {
			case err == nil && !req.Redacted:
				if slices.Contains(pseudonyms, req.Record.Subject) {
					continue
				}
				c.Purpose, c.LegalBasis, c.Environment = req.Record.Purpose, req.Record.LegalBasis, req.Record.Environment
			case err != nil && !errors.Is(err, ErrNotFound):
				return ConsultationPage{}, err
			}
			c.Request, c.Status = r.Request, r.Status
		} else if o, ok, err := s.outcomeOf(e.Seq); err != nil {
			return ConsultationPage{}, err
		} else if ok {
			c.Status = o.Record.Status
		}
		out.Consultations = append(out.Consultations, c)
	}
	return out, nil
}

// pseudonyms returns subject's pseudonym under every subject key.
func (s *Store) pseudonyms(subject string) []string {
	out := make([]string, 0, len(s.opt.SubjectKeys))
	for _, k := range s.opt.SubjectKeys {
		out = append(out, Pseudonym(k, subject))
	}
	return out
}

// Outcome returns the outcome record of the call whose request record is
// requestSeq (ok false if none was recorded).
func (s *Store) Outcome(ctx context.Context, requestSeq uint64) (e Entry, ok bool, err error) {
	if s.closed.Load() {
		return Entry{}, false, ErrClosed
	}
	return s.outcomeOf(requestSeq)
}

// outcomeOf follows the link term of a request to its outcome, re-checked
// against the outcome record.
func (s *Store) outcomeOf(requestSeq uint64) (Entry, bool, error) {
	it := s.idx.Seqs(linkTerm(requestSeq), requestSeq+1, ^uint64(0), false)
	defer it.Close()
	for {
		seq, ok := it.Next()
		if !ok {
			return Entry{}, false, it.Err()
		}
		e, err := s.getEntry(seq)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return Entry{}, false, err
		}
		if !e.Redacted && e.Record.Kind == KindOutcome && e.Record.Request == requestSeq {
			return e, true, nil
		}
	}
}

// seqRange turns a time range into the seq range holding it, by binary
// search over the records (their time never decreases with seq).
func (s *Store) seqRange(from, to time.Time) (lo, hi uint64, err error) {
	s.mu.Lock()
	first, last := s.pubw.first, s.pubw.seq
	s.mu.Unlock()
	if last < first {
		return 1, 0, nil
	}
	lo, hi = first, last
	// firstAtOrAfter returns the first seq in [first, last+1] with time >= t.
	firstAtOrAfter := func(t time.Time) (uint64, error) {
		a, b := first, last+1
		for a < b {
			m := a + (b-a)/2
			mt, err := s.timeAt(m)
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

// timeAt is the time of record seq.
func (s *Store) timeAt(seq uint64) (time.Time, error) {
	v, err := s.lg.read(seq)
	if err != nil {
		return time.Time{}, err
	}
	e, err := parseEntry(seq, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("audit: record %d: %w", seq, err)
	}
	return e.time, nil
}

// seqStream yields seqs in [lo, hi] in order without duplicates: merged
// over index terms, or every seq when there are none.
type seqStream struct {
	its    []*termindex.Iter
	heads  []uint64
	live   []bool
	desc   bool
	lo, hi uint64
	cur    uint64 // no terms: the next seq
	all    bool
	done   bool
	last   uint64
	any    bool
}

func (s *Store) seqs(terms []uint64, lo, hi uint64, desc bool) *seqStream {
	st := &seqStream{desc: desc, lo: lo, hi: hi}
	if len(terms) == 0 {
		st.all = true
		st.cur = lo
		if desc {
			st.cur = hi
		}
		return st
	}
	for _, t := range terms {
		it := s.idx.Seqs(t, lo, hi, desc)
		seq, ok := it.Next()
		st.its = append(st.its, it)
		st.heads = append(st.heads, seq)
		st.live = append(st.live, ok)
	}
	return st
}

func (st *seqStream) next() (uint64, bool, error) {
	if st.all {
		if st.done || st.lo > st.hi {
			return 0, false, nil
		}
		seq := st.cur
		if st.desc {
			st.done = seq == st.lo
			st.cur--
		} else {
			st.done = seq == st.hi
			st.cur++
		}
		return seq, true, nil
	}
	for {
		bi := -1
		for i, ok := range st.live {
			if !ok {
				continue
			}
			if bi < 0 || (!st.desc && st.heads[i] < st.heads[bi]) || (st.desc && st.heads[i] > st.heads[bi]) {
				bi = i
			}
		}
		if bi < 0 {
			for _, it := range st.its {
				if err := it.Err(); err != nil {
					return 0, false, err
				}
			}
			return 0, false, nil
		}
		seq := st.heads[bi]
		st.heads[bi], st.live[bi] = st.its[bi].Next()
		if st.any && seq == st.last {
			continue
		}
		st.any, st.last = true, seq
		return seq, true, nil
	}
}

func (st *seqStream) close() {
	for _, it := range st.its {
		it.Close()
	}
}
