package audit

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

// Migration from the previous storage format, a Badger database in Dir
// (keys "r" seq: entries, "c" seq: checkpoints, "a": the anchor; the
// index keys are not carried over, Open rebuilds the index). Every entry
// (formats 1 and 2), checkpoint and the anchor is copied byte for byte
// into the new layout under Dir/migrate.tmp, the copy is verified and its
// report compared with a walk of the Badger store, then the Badger files
// move to Dir/badger-migrated-<unix time>/ (kept) and the new files into
// place. An interrupted migration starts again (Badger files still in
// Dir) or finishes its last renames (they have moved).
const migrateTmp = "migrate.tmp"

func (s *Store) migrate() error {
	dir := s.dir
	tmp := filepath.Join(dir, migrateTmp)
	hasBadger := fileExists(filepath.Join(dir, "MANIFEST"))
	if fileExists(tmp) {
		if !hasBadger {
			return finishMigration(dir, tmp)
		}
		if err := os.RemoveAll(tmp); err != nil {
			return err
		}
	}
	if !hasBadger {
		return nil
	}
	if fileExists(filepath.Join(dir, "log")) {
		return errors.New("the directory holds both a Badger store and a segment log: move one away")
	}
	start := time.Now()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithNumVersionsToKeep(1))
	if err != nil {
		return err
	}
	old, n, err := copyBadger(db, tmp, s.pub)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// Verify the copy the way Open will read it.
	lg, err := openLog(filepath.Join(tmp, "log"), s.log, false, 0)
	if err != nil {
		return err
	}
	cks, err := openCkFile(filepath.Join(tmp, "checkpoints"), false, s.log)
	if err != nil {
		lg.close()
		return err
	}
	vs := lg.snapshot()
	rep, err := verifyFiles(context.Background(), vs, cks.reader(), filepath.Join(tmp, "anchor"), s.pub)
	releaseAll(vs)
	lg.close()
	cks.close()
	if err != nil {
		return err
	}
	if !reflect.DeepEqual(rep, old) {
		return fmt.Errorf("the copy does not verify like the original: %+v (Badger: %+v)", rep, old)
	}
	// Move the Badger files aside, then the new ones into place.
	aside := filepath.Join(dir, "badger-migrated-"+strconv.FormatInt(time.Now().Unix(), 10))
	if err := os.Mkdir(aside, dirPerm); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		switch n := e.Name(); {
		case n == migrateTmp, n == "audit.lock", n == filepath.Base(aside):
		default:
			if err := os.Rename(filepath.Join(dir, n), filepath.Join(aside, n)); err != nil {
				return err
			}
			// Badger's files hold the same records: owner-only, like ours.
			perm := os.FileMode(filePerm)
			if e.IsDir() {
				perm = dirPerm
			}
			if err := os.Chmod(filepath.Join(aside, n), perm); err != nil {
				return err
			}
		}
	}
	if err := syncDir(aside); err != nil {
		return err
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	if err := finishMigration(dir, tmp); err != nil {
		return err
	}
	s.log.Warn("audit store migrated from Badger to the segment log; the Badger files are kept",
		"records", n, "problem", rep.Problem, "moved_to", aside, "took", time.Since(start))
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func finishMigration(dir, tmp string) error {
	for _, n := range []string{"log", "checkpoints", "anchor"} {
		if err := os.Rename(filepath.Join(tmp, n), filepath.Join(dir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return os.RemoveAll(tmp)
}

// copyBadger writes the Badger store's entries, checkpoints and anchor
// into tmp and walks them as the old Verify did, returning its report.
func copyBadger(db *badger.DB, tmp string, pub []byte) (Report, uint64, error) {
	var rep Report
	var n uint64
	if err := os.MkdirAll(filepath.Join(tmp, "log"), dirPerm); err != nil {
		return rep, 0, err
	}
	err := db.View(func(txn *badger.Txn) error {
		var a *Anchor
		if it, err := txn.Get([]byte{'a'}); err == nil {
			v, err := it.ValueCopy(nil)
			if err != nil {
				return err
			}
			c, ok := decodeBadgerCheckpoint(v)
			a = &Anchor{}
			if ok {
				a = &Anchor{Seq: c.Seq, Prev: c.Head, Time: c.Time, Signature: c.Signature}
				if err := writeAnchor(filepath.Join(tmp, "anchor"), *a); err != nil {
					return fmt.Errorf("anchor: %w", err)
				}
			}
		} else if !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		w := newWalker(pub, a)
		// Checkpoints: copied, and kept for the walk.
		var cks []Checkpoint
		cf, err := os.OpenFile(filepath.Join(tmp, "checkpoints"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		if err != nil {
			return err
		}
		defer cf.Close()
		it := txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'c'}, PrefetchValues: true})
		for it.Rewind(); it.Valid(); it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				it.Close()
				return err
			}
			c, ok := decodeBadgerCheckpoint(v)
			if !ok || len(it.Item().Key()) != 9 || c.Seq != binary.BigEndian.Uint64(it.Item().Key()[1:]) {
				it.Close()
				return fmt.Errorf("checkpoint under key %x is unreadable", it.Item().Key())
			}
			b, err := encodeCkFrame(c.Seq, c.Head, c.Time, c.Signature)
			if err != nil {
				it.Close()
				return fmt.Errorf("checkpoint %d: %w", c.Seq, err)
			}
			if _, err := cf.Write(b); err != nil {
				it.Close()
				return err
			}
			cks = append(cks, c)
		}
		it.Close()
		if err := cf.Sync(); err != nil {
			return err
		}
		feed := func(upTo uint64) {
			for len(cks) > 0 && cks[0].Seq <= upTo && !w.failed() {
				w.checkpoint(cks[0])
				cks = cks[1:]
			}
		}
		// Entries, in key order, into segments.
		var seg *os.File
		var size int64
		closeSeg := func() error {
			if seg == nil {
				return nil
			}
			err := seg.Sync()
			if cerr := seg.Close(); err == nil {
				err = cerr
			}
			seg = nil
			return err
		}
		defer closeSeg()
		it = txn.NewIterator(badger.IteratorOptions{Prefix: []byte{'r'}, PrefetchValues: true, PrefetchSize: 64})
		defer it.Close()
		var buf []byte
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			seq := uint64(0) // a foreign key: Verify names it as inserted
			if len(k) == 9 {
				seq = binary.BigEndian.Uint64(k[1:])
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			if seg == nil || size >= segmentSize {
				if err := closeSeg(); err != nil {
					return err
				}
				if seg, err = os.OpenFile(segPath(filepath.Join(tmp, "log"), max(seq, 1), ".seg"), os.O_RDWR|os.O_CREATE|os.O_TRUNC, filePerm); err != nil {
					return err
				}
				if _, err := seg.Write([]byte(segMagic)); err != nil {
					return err
				}
				size = int64(len(segMagic))
			}
			buf = appendFrame(buf[:0], seq, v)
			if _, err := seg.Write(buf); err != nil {
				return err
			}
			size += int64(len(buf))
			n++
			if len(k) != 9 {
				w.entry(nil, nil, true)
				continue
			}
			if seq > 0 {
				feed(seq - 1)
			}
			e, perr := parseEntry(seq, v)
			w.entry(&e, perr, false)
		}
		feed(^uint64(0))
		rep = w.report()
		if err := closeSeg(); err != nil {
			return err
		}
		if err := syncDir(filepath.Join(tmp, "log")); err != nil {
			return err
		}
		return syncDir(tmp)
	})
	return rep, n, err
}
