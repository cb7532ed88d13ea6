package access

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Keys: one prefix per record kind; admin log entries are keyed by their
// big-endian sequence number so that key order is log order.
const (
	keyOrg   = "o/"
	keyApp   = "a/"
	keyCred  = "c/"
	keyGrant = "g/"
	keyLog   = "l/"
)

// store is the durable side of the registry. Badger holds every record as
// versioned JSON; the Registry keeps the read model in memory.
type store struct {
	db *badger.DB
}

func openStore(dir string, inMemory bool) (*store, error) {
	opts := badger.DefaultOptions(dir).
		WithLogger(nil). // badger's INFO chatter is not ours to print
		WithSyncWrites(true).
		WithNumVersionsToKeep(1).
		// The registry is small (thousands of records): badger's defaults
		// (64 MiB memtables, 256 MiB block cache, 1 GiB value log files)
		// are sized for the audit store, not for this.
		WithMemTableSize(8 << 20).
		WithBlockCacheSize(8 << 20).
		WithValueLogFileSize(16 << 20)
	if inMemory {
		opts = opts.WithInMemory(true).WithDir("").WithValueDir("")
	}
	db, err := badger.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("access registry: open store: %w", err)
	}
	return &store{db: db}, nil
}

func (s *store) close() error { return s.db.Close() }

// put is one record to write.
type put struct {
	key string
	val any
}

// commit writes records and log entries in one transaction: an admin action
// and its log entries are stored together or not at all.
func (s *store) commit(puts []put, log []LogEntry) error {
	return s.db.Update(func(txn *badger.Txn) error {
		for _, p := range puts {
			b, err := json.Marshal(p.val)
			if err != nil {
				return err
			}
			if err := txn.Set([]byte(p.key), b); err != nil {
				return err
			}
		}
		for i := range log {
			b, err := json.Marshal(&log[i])
			if err != nil {
				return err
			}
			if err := txn.Set(logKey(log[i].Seq), b); err != nil {
				return err
			}
		}
		return nil
	})
}

func logKey(seq uint64) []byte {
	k := make([]byte, len(keyLog)+8)
	copy(k, keyLog)
	binary.BigEndian.PutUint64(k[len(keyLog):], seq)
	return k
}

// versioned is implemented by every stored record.
type versioned interface{ version() int }

func (o *Organisation) version() int { return o.V }
func (a *Application) version() int  { return a.V }
func (c *Credential) version() int   { return c.V }
func (g *Grant) version() int        { return g.V }
func (e *LogEntry) version() int     { return e.V }

// errNewer marks a record written by a newer version of OpenFSB.
var errNewer = errors.New("written by a newer version of OpenFSB")

// decode reads one record and checks its version. Version 1 is the only one
// so far; an upgrade of an older version would happen here.
func decode(key []byte, val []byte, rec versioned) error {
	if err := json.Unmarshal(val, rec); err != nil {
		return fmt.Errorf("record %q: %w", key, err)
	}
	switch v := rec.version(); {
	case v > recordVersion:
		return fmt.Errorf("record %q has version %d: %w", key, v, errNewer)
	case v < 1:
		return fmt.Errorf("record %q has no version", key)
	}
	return nil
}

// load reads every record into a fresh set and returns the last log
// sequence number.
func (s *store) load() (*records, uint64, error) {
	rs := newRecords()
	var last uint64
	err := s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.DefaultIteratorOptions)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			key := item.Key()
			if len(key) < 2 {
				continue
			}
			prefix := string(key[:2])
			if prefix == keyLog {
				if len(key) == len(keyLog)+8 {
					last = max(last, binary.BigEndian.Uint64(key[len(keyLog):]))
				}
				continue
			}
			err := item.Value(func(val []byte) error {
				switch prefix {
				case keyOrg:
					o := new(Organisation)
					if err := decode(key, val, o); err != nil {
						return err
					}
					rs.orgs[o.EnterpriseNumber] = o
				case keyApp:
					a := new(Application)
					if err := decode(key, val, a); err != nil {
						return err
					}
					rs.apps[a.ID] = a
				case keyCred:
					c := new(Credential)
					if err := decode(key, val, c); err != nil {
						return err
					}
					rs.creds[c.ID] = c
				case keyGrant:
					g := new(Grant)
					if err := decode(key, val, g); err != nil {
						return err
					}
					rs.grants[g.ID] = g
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("access registry: load: %w", err)
	}
	return rs, last, nil
}

// LogQuery selects admin log entries.
type LogQuery struct {
	Subject string // only entries about this id; "" for all
	After   uint64 // only entries with a greater sequence number
	Limit   int    // at most this many (default and maximum 1000)
}

// readLog returns entries in sequence order.
func (s *store) readLog(q LogQuery) ([]LogEntry, error) {
	if q.Limit <= 0 || q.Limit > 1000 {
		q.Limit = 1000
	}
	if q.After == ^uint64(0) {
		return nil, nil
	}
	var out []LogEntry
	err := s.db.View(func(txn *badger.Txn) error {
		opts := badger.DefaultIteratorOptions
		opts.Prefix = []byte(keyLog)
		it := txn.NewIterator(opts)
		defer it.Close()
		for it.Seek(logKey(q.After + 1)); it.Valid() && len(out) < q.Limit; it.Next() {
			var e LogEntry
			err := it.Item().Value(func(val []byte) error { return decode(it.Item().Key(), val, &e) })
			if err != nil {
				return err
			}
			if q.Subject == "" || e.Subject == q.Subject {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("access registry: read admin log: %w", err)
	}
	return out, nil
}
