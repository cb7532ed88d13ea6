package access

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a Registry. The zero value works for a registry with
// neither certificate credentials nor tokens.
type Options struct {
	// ClientCAs verifies client certificate chains, at registration and on
	// every call. Without it, no certificate is accepted.
	ClientCAs *x509.CertPool
	// Tokens configures issued and accepted access tokens; without a key,
	// issuer and audience, IssueToken refuses and bearer tokens are invalid.
	Tokens TokenConfig
	// FailureLimit refused calls (or token requests) from one address or
	// credential within FailureWindow block it until the window ends.
	// Defaults: 20 within 1 minute.
	FailureLimit  int
	FailureWindow time.Duration
	// Now stamps admin actions; default time.Now.
	Now func() time.Time
	// Logger receives admin actions at Info; default slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.FailureLimit <= 0 {
		o.FailureLimit = 20
	}
	if o.FailureWindow <= 0 {
		o.FailureWindow = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Registry is the consumer registry and the access decision point. Its
// admin methods write through to Badger and publish a new read model
// before they return; Decide reads that model without locks.
//
// Locks: mu serialises admin actions (store writes, snapshot swaps, the
// quota counter map). Decide never takes mu; it takes only the short leaf
// locks of the chain and token caches, one quota counter, and the failure
// counter, never two at once.
type Registry struct {
	opts  Options
	store *store

	snap     atomic.Pointer[snapshot]
	chains   chainCache
	tokens   tokenCache
	failures *failures

	mu     sync.Mutex // admin actions
	seq    uint64     // last admin log sequence number
	quotas quotaCounters
	closed bool
}

// Open opens (or creates) the registry stored in dir.
func Open(dir string, opts Options) (*Registry, error) {
	if dir == "" {
		return nil, errors.New("access registry: no directory (use OpenInMemory for a throw-away registry)")
	}
	return open(dir, false, opts)
}

// OpenInMemory opens an empty registry kept in memory only, for tests and
// demos.
func OpenInMemory(opts Options) (*Registry, error) { return open("", true, opts) }

func open(dir string, inMemory bool, opts Options) (*Registry, error) {
	opts = opts.withDefaults()
	if k := opts.Tokens.Key; k != nil && len(k) != 64 {
		return nil, fmt.Errorf("access registry: token key has %d bytes, an Ed25519 private key has 64", len(k))
	}
	st, err := openStore(dir, inMemory)
	if err != nil {
		return nil, err
	}
	rs, seq, err := st.load()
	if err != nil {
		st.close()
		return nil, err
	}
	r := &Registry{
		opts:     opts,
		store:    st,
		failures: newFailures(opts.FailureLimit, opts.FailureWindow),
		seq:      seq,
		quotas:   quotaCounters{m: map[string]*quotaCounter{}},
	}
	r.snap.Store(index(rs, r.quotas.get))
	return r, nil
}

// Close closes the store. Decide keeps answering from the last read model;
// admin actions fail.
func (r *Registry) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	return r.store.close()
}

// change is one admin action in progress: copies of the touched maps, the
// records to write, and the log entries.
type change struct {
	r      *Registry
	rs     *records
	copied [4]bool
	puts   []put
	log    []LogEntry
	actor  string
	now    time.Time
}

// update runs fn as one admin action: fn validates and stages changes; on
// success they are stored in one transaction, then published.
func (r *Registry) update(ctx context.Context, actor string, fn func(ch *change) error) error {
	if actor == "" {
		return fmt.Errorf("admin action without an actor: %w", ErrInvalid)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("access registry: closed")
	}
	cur := r.snap.Load().records
	ch := &change{r: r, rs: &records{orgs: cur.orgs, apps: cur.apps, creds: cur.creds, grants: cur.grants}, actor: actor, now: r.opts.Now().UTC()}
	if err := fn(ch); err != nil {
		return err
	}
	for i := range ch.log {
		ch.log[i].Seq = r.seq + uint64(i) + 1
	}
	if err := r.store.commit(ch.puts, ch.log); err != nil {
		return fmt.Errorf("access registry: store: %w", err)
	}
	r.seq += uint64(len(ch.log))
	r.snap.Store(index(ch.rs, r.quotas.get))
	for _, e := range ch.log {
		r.opts.Logger.Info("access admin action", "seq", e.Seq, "actor", e.Actor, "action", e.Action, "subject", e.Subject, "before", e.Before, "after", e.After)
	}
	return nil
}

func (ch *change) putOrg(o *Organisation) {
	o.V = recordVersion
	stage(ch, &ch.rs.orgs, &ch.copied[0], keyOrg, o.EnterpriseNumber, o)
}

func (ch *change) putApp(a *Application) {
	a.V = recordVersion
	stage(ch, &ch.rs.apps, &ch.copied[1], keyApp, a.ID, a)
}

func (ch *change) putCred(c *Credential) {
	c.V = recordVersion
	stage(ch, &ch.rs.creds, &ch.copied[2], keyCred, c.ID, c)
}

func (ch *change) putGrant(g *Grant) {
	g.V = recordVersion
	stage(ch, &ch.rs.grants, &ch.copied[3], keyGrant, g.ID, g)
}

// stage puts v under id in the change's copy of m (cloned on first write,
// so the published read model is never modified) and queues it for the
// store under prefix+id.
func stage[T any](ch *change, m *map[string]*T, copied *bool, prefix, id string, v *T) {
	if !*copied {
		*m, *copied = maps.Clone(*m), true
	}
	(*m)[id] = v
	ch.puts = append(ch.puts, put{prefix + id, v})
}

// record appends an admin log entry.
func (ch *change) record(action, subject, before, after, detail string) {
	ch.log = append(ch.log, LogEntry{V: recordVersion, At: ch.now, Actor: ch.actor, Action: action, Subject: subject, Before: before, After: after, Detail: detail})
}

// Log lists admin log entries in order.
func (r *Registry) Log(ctx context.Context, q LogQuery) ([]LogEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("access registry: closed")
	}
	return r.store.readLog(q)
}
