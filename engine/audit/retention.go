package audit

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// PruneReport says what Prune removed.
type PruneReport struct {
	Deleted  uint64  `json:"deleted"`  // records removed from the start of the chain
	Redacted uint64  `json:"redacted"` // later records whose content was removed, digest kept
	Anchor   *Anchor `json:"anchor,omitempty"`
}

// signedEntry reads a record a checkpoint signs, whether or not the writer
// has published its batch yet: the checkpoint is written after the
// records' sync and before the batch is published, so Verify can report
// records that getEntry does not serve yet.
func (s *Store) signedEntry(seq uint64) (Entry, error) {
	v, err := s.lg.read(seq)
	if err != nil {
		return Entry{}, err
	}
	return entryOf(seq, v)
}

// Prune applies each service's retention as of now, keeping the remaining
// chain verifiable:
//
//   - expired records at the start of the chain are deleted, after a signed
//     anchor names the first kept record and the chain hash before it;
//   - an expired record after a kept one is redacted: its content goes, its
//     digest stays, so the chain through it still verifies.
//
// Prune verifies the chain first and refuses to prune a damaged one (an
// anchor over altered records would launder them), and touches only
// records a checkpoint already covers. It runs beside the writer: it seals
// the active segment if it must change it, then rewrites each sealed
// segment it changes atomically (temp file, fsync, rename) and deletes
// the segments wholly before the anchor.
func (s *Store) Prune(ctx context.Context, now time.Time) (PruneReport, error) {
	var rep PruneReport
	if s.opt.Signer == nil {
		return rep, ErrReadOnly
	}
	release, err := s.useFiles(ctx)
	if err != nil {
		return rep, err
	}
	defer release()
	v, err := Verify(ctx, s, s.pub)
	if err != nil {
		return rep, err
	}
	if v.Problem != nil {
		return rep, fmt.Errorf("audit: prune refused, the chain does not verify: %w", v.Problem)
	}
	expired := func(service string, t time.Time) bool {
		r := s.policy(service).Retention
		return r > 0 && t.Add(r).Before(now)
	}

	// Plan. The work is bounded by what expires: the prefix walk stops at
	// the first kept record; redaction candidates come from each service's
	// index up to its retention horizon, and (for services under the
	// default policy) from the records up to the default horizon.
	keep := v.First // the first kept record
	vs := s.lg.snapshot()
	var werr error
	err = walkFrames(vs, v.First, func(seq uint64, b []byte, ferr error) bool {
		if werr = ferr; ferr != nil || seq > v.Signed || ctx.Err() != nil {
			return false
		}
		e, err := parseEntry(seq, b)
		if werr = err; err != nil {
			return false
		}
		service := e.service
		if !e.redacted {
			r, err := Decode(e.record)
			if werr = err; err != nil {
				return false
			}
			service = r.Service
		}
		if !expired(service, e.time) {
			return false
		}
		keep = seq + 1
		return true
	})
	releaseAll(vs)
	if err == nil {
		err = werr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return rep, fmt.Errorf("audit: prune: %w", err)
	}
	red := map[uint64][]byte{} // seq -> its redacted entry
	consider := func(seq uint64) error {
		if _, ok := red[seq]; ok || seq < keep || seq > v.Signed {
			return nil
		}
		e, err := s.signedEntry(seq)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if !e.Redacted && expired(e.Record.Service, e.Record.Time) {
			r := entry{seq: seq, prev: e.Prev, hash: e.Hash, digest: recordDigest(e.Raw), time: e.Record.Time, service: e.Record.Service}
			if r.sig, err = sign(s.opt.Signer, RedactionMessage(seq, r.digest, r.time, r.service)); err != nil {
				return err
			}
			if !signedRedaction(s.pub, &r) { // the record's content goes for good: its proof must hold
				return errors.New("audit: prune: the signer's redaction signature does not verify under the store's public key")
			}
			red[seq] = redactedEntry(&r)
		}
		return nil
	}
	horizon := func(r time.Duration) (uint64, error) {
		_, hi, err := s.seqRange(time.Time{}, now.Add(-r))
		return min(hi, v.Signed), err
	}
	for name, p := range s.opt.Services {
		if p.Retention <= 0 {
			continue
		}
		hi, err := horizon(p.Retention)
		if err != nil {
			return rep, fmt.Errorf("audit: prune: %w", err)
		}
		if hi < keep {
			continue
		}
		st := s.seqs([]uint64{termOf(fService, name)}, keep, hi, false)
		for err == nil {
			q, ok, e := st.next()
			if e != nil || !ok {
				err = e
				break
			}
			err = consider(q)
		}
		st.close()
		if err != nil {
			return rep, fmt.Errorf("audit: prune: %w", err)
		}
	}
	if s.opt.Default.Retention > 0 {
		hi, err := horizon(s.opt.Default.Retention)
		if err != nil {
			return rep, fmt.Errorf("audit: prune: %w", err)
		}
		for q := keep; q <= hi; q++ {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			if err := consider(q); err != nil {
				return rep, fmt.Errorf("audit: prune: %w", err)
			}
		}
	}

	if keep > v.First {
		// The anchor first, durably: an interrupted prune leaves old
		// records below it, which Verify skips and the next Prune removes.
		a := Anchor{Seq: keep, Prev: v.Head, Time: now.UTC()}
		if keep-1 != v.Last {
			e, err := s.signedEntry(keep)
			if err != nil {
				return rep, fmt.Errorf("audit: prune: %w", err)
			}
			a.Prev = e.Prev
		}
		if a.Signature, err = sign(s.opt.Signer, AnchorMessage(a.Seq, a.Prev, a.Time)); err != nil {
			return rep, err
		}
		if err := writeAnchor(s.anchorPath(), a); err != nil {
			return rep, fmt.Errorf("%w: prune: %v", ErrUnavailable, err)
		}
		rep.Anchor = &a
		s.mu.Lock()
		s.pubw.first = keep
		s.mu.Unlock()
	}

	// Seal the active segment if it holds anything to change.
	needRoll := false
	s.lg.mu.RLock()
	if g := s.lg.active(); g != nil && g.count > 0 && !g.sealed {
		needRoll = g.first < keep
		for q := range red {
			needRoll = needRoll || q >= g.first
		}
	}
	s.lg.mu.RUnlock()
	if needRoll {
		if err := s.append(ctx, &pending{roll: true}); err != nil {
			return rep, fmt.Errorf("audit: prune: %w", err)
		}
	}
	vs = s.lg.snapshot()
	defer releaseAll(vs)
	for _, sv := range vs {
		if sv.count == 0 || !sv.sealed {
			continue
		}
		last := sv.first + sv.count - 1
		if last < keep {
			if err := s.lg.remove(sv.g); err != nil {
				return rep, fmt.Errorf("audit: prune: %w", err)
			}
			rep.Deleted += sv.count
			continue
		}
		touched := sv.first < keep
		for q := range red {
			touched = touched || (q >= sv.first && q <= last)
		}
		if !touched {
			continue
		}
		dropped, redacted, err := s.lg.rewrite(sv, keep, red)
		if err != nil {
			return rep, fmt.Errorf("%w: prune: %v", ErrUnavailable, err)
		}
		rep.Deleted += dropped
		rep.Redacted += redacted
	}
	if keep > v.First {
		if err := s.idx.Forget(keep); err != nil {
			s.log.Warn("audit index: forget failed", "err", err)
		}
	}
	return rep, nil
}

// remove deletes a sealed segment wholly before the anchor.
func (l *segLog) remove(g *segment) error {
	l.mu.Lock()
	for i, x := range l.segs {
		if x == g {
			l.segs = append(l.segs[:i:i], l.segs[i+1:]...)
			break
		}
	}
	l.mu.Unlock()
	g.release()
	if err := os.Remove(g.path); err != nil {
		return err
	}
	os.Remove(segPath(l.dir, g.name, ".idx"))
	return syncDir(l.dir)
}

// rewrite replaces a sealed segment by a copy without the frames before
// keep and with the entries in red redacted: temp file, fsync, rename,
// fsync of the directory, then its sidecar.
func (l *segLog) rewrite(sv segView, keep uint64, red map[uint64][]byte) (dropped, redacted uint64, err error) {
	g := sv.g
	out := []byte(segMagic)
	var offs []int64
	first, count := uint64(0), uint64(0)
	err = walkFrames([]segView{sv}, 0, func(seq uint64, b []byte, ferr error) bool {
		if ferr != nil {
			err = fmt.Errorf("%s: %w", g.path, ferr)
			return false
		}
		if seq < keep {
			dropped++
			return true
		}
		if count == 0 {
			first = seq
		}
		count++
		offs = append(offs, int64(len(out)))
		if r, ok := red[seq]; ok {
			out = appendFrame(out, seq, r)
			redacted++
		} else {
			out = appendFrame(out, seq, b)
		}
		return true
	})
	if err != nil {
		return 0, 0, err
	}
	if count == 0 {
		return dropped, 0, l.remove(g)
	}
	if err := writeFileAtomic(g.path, out); err != nil {
		return 0, 0, err
	}
	f, err := os.Open(g.path)
	if err != nil {
		return 0, 0, err
	}
	ng := &segment{name: g.name, path: g.path, f: f, first: first, count: count, size: int64(len(out)),
		end: int64(len(out)), offs: offs, sealed: true}
	ng.refs.Store(1)
	if err := writeFileAtomic(segPath(l.dir, g.name, ".idx"), encodeSidecar(ng)); err != nil {
		f.Close()
		return 0, 0, err
	}
	l.mu.Lock()
	for i, x := range l.segs {
		if x == g {
			l.segs[i] = ng
		}
	}
	l.mu.Unlock()
	g.release()
	return dropped, redacted, nil
}

// Backup writes the store — the log segments, the checkpoints and the
// anchor — to w as a tar stream. It runs beside the writer; what was
// durable when it started is in it. The index is not: Open rebuilds it.
func (s *Store) Backup(ctx context.Context, w io.Writer) error {
	release, err := s.useFiles(ctx)
	if err != nil {
		return err
	}
	defer release()
	// Checkpoints before the log: each names records already in it.
	nck := s.cks.count()
	vs := s.lg.snapshot()
	defer releaseAll(vs)
	tw := tar.NewWriter(w)
	add := func(name string, r io.Reader, size int64) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: filePerm, Size: size, ModTime: time.Now(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := io.Copy(tw, r)
		return err
	}
	err = func() error {
		if a, err := os.ReadFile(s.anchorPath()); err == nil {
			if err := add("anchor", bytesReader(a), int64(len(a))); err != nil {
				return err
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if nck > 0 {
			if err := add("checkpoints", io.NewSectionReader(s.cks.f, 0, nck*ckSize), nck*ckSize); err != nil {
				return err
			}
		}
		for _, v := range vs {
			if err := add("log/"+filepath.Base(v.g.path), io.NewSectionReader(v.g.f, 0, v.size), v.size); err != nil {
				return err
			}
		}
		return tw.Close()
	}()
	if err != nil {
		return fmt.Errorf("audit: backup: %w", err)
	}
	return nil
}

var backupName = regexp.MustCompile(`^(anchor|checkpoints|log/[0-9]{20}\.seg)$`)

// Restore loads a Backup into dir, which must not exist or be empty. Open
// the store there afterwards (it rebuilds the index); Verify proves the
// chain came through intact.
func Restore(ctx context.Context, dir string, r io.Reader) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("audit: restore: %s is not empty", dir)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("audit: restore: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "log"), dirPerm); err != nil {
		return fmt.Errorf("audit: restore: %w", err)
	}
	if err := os.Chmod(dir, dirPerm); err != nil { // it may have existed, empty
		return fmt.Errorf("audit: restore: %w", err)
	}
	tr := tar.NewReader(r)
	files := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if files == 0 {
				return fmt.Errorf("audit: restore: not a backup of this store (%v); a backup of the older Badger store restores with the version that wrote it, whose directory this version then migrates on Open", err)
			}
			return fmt.Errorf("audit: restore: %w", err)
		}
		if !backupName.MatchString(h.Name) || h.Typeflag != tar.TypeReg {
			return fmt.Errorf("audit: restore: unexpected file %q in the backup", h.Name)
		}
		f, err := os.OpenFile(filepath.Join(dir, filepath.FromSlash(h.Name)), os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		if err != nil {
			return fmt.Errorf("audit: restore: %w", err)
		}
		_, err = io.Copy(f, tr)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("audit: restore: %w", err)
		}
		files++
	}
	if err := syncDir(filepath.Join(dir, "log")); err != nil {
		return fmt.Errorf("audit: restore: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("audit: restore: %w", err)
	}
	return nil
}
