package audit

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The append-only segment log (README.md, "Storage layout"):
//
//	Dir/log/<20-digit seq>.seg   magic "FSBAUDL1", then frames
//	frame: length (4, BE) | CRC-32C (4) of seq‖entry | seq (8, BE) | entry
//	Dir/log/<20-digit seq>.idx   sidecar of a sealed segment: seq -> offset
//
// The name is the seq the segment was created for; a prune rewrite may
// drop frames at its start, so the first frame's seq can be larger.
const (
	segMagic  = "FSBAUDL1"
	frameHead = 4 + 4 + 8
	// maxEntry bounds a frame's length field: larger is corruption.
	maxEntry = 1 << 30
)

// segmentSize: a segment is sealed once it holds this many bytes (a
// variable for tests).
var segmentSize int64 = 64 << 20

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var (
	errShortFrame = errors.New("truncated frame")
	errBadFrame   = errors.New("frame checksum mismatch")
	errBadLength  = errors.New("frame length out of range")
)

// cutFrame reads the frame at the start of b: its seq, its entry (aliasing
// b) and its size. errShortFrame: b ends inside the frame.
func cutFrame(b []byte) (seq uint64, entry []byte, n int, err error) {
	if len(b) < frameHead {
		return 0, nil, 0, errShortFrame
	}
	l := binary.BigEndian.Uint32(b)
	if l > maxEntry {
		return 0, nil, 0, errBadLength
	}
	n = frameHead + int(l)
	if len(b) < n {
		return 0, nil, 0, errShortFrame
	}
	if crc32.Checksum(b[8:n], castagnoli) != binary.BigEndian.Uint32(b[4:]) {
		return binary.BigEndian.Uint64(b[8:]), b[frameHead:n], n, errBadFrame
	}
	return binary.BigEndian.Uint64(b[8:]), b[frameHead:n], n, nil
}

// sealFrame fills in the length and CRC of the frame starting at b[0],
// whose seq and entry are already in place.
func sealFrame(b []byte) {
	binary.BigEndian.PutUint32(b, uint32(len(b)-frameHead))
	binary.BigEndian.PutUint32(b[4:], crc32.Checksum(b[8:], castagnoli))
}

func appendFrame(dst []byte, seq uint64, entry []byte) []byte {
	off := len(dst)
	dst = append(dst, make([]byte, 8)...)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	dst = append(dst, entry...)
	sealFrame(dst[off:])
	return dst
}

// segment is one log file. Readers hold a reference while they use its
// files; a segment replaced by a prune rewrite is closed once the last
// reader lets go.
type segment struct {
	name  uint64
	path  string
	f     *os.File
	first uint64 // seq of the first frame (0: none yet)
	count uint64 // frames
	size  int64  // bytes in the file, header included (prepared zeros after them not counted)
	end   int64  // end of the last frame the offsets cover (size unless damaged)
	// prepared is the length of the file when it was prepared with zeros
	// (0: it grows as frames are appended). The writer overwrites the
	// zeros, so its fdatasync flushes data only.
	prepared int64
	// Offsets of the frames: in memory for the active segment (and while
	// a sealed one's sidecar is being written), else in the sidecar.
	offs   []int64
	side   *os.File
	sealed bool
	// damaged are the frames a scan found bad with good frames after them
	// (kept as damage: Get refuses them, Verify names them), by index.
	damaged []int

	refs atomic.Int64 // readers + 1 while in the log
}

func (g *segment) release() {
	if g.refs.Add(-1) == 0 {
		g.f.Close()
		if g.side != nil {
			g.side.Close()
		}
	}
}

func segPath(dir string, name uint64, ext string) string {
	return filepath.Join(dir, fmt.Sprintf("%020d%s", name, ext))
}

// offset returns where frame seq starts and its size.
func (g *segment) frameAt(seq uint64) (int64, int64, error) {
	if g.count == 0 || seq < g.first || seq >= g.first+g.count {
		return 0, 0, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	i := seq - g.first
	if g.offs != nil {
		end := g.end
		if i+1 < uint64(len(g.offs)) {
			end = g.offs[i+1]
		}
		return g.offs[i], end - g.offs[i], nil
	}
	var b [16]byte
	n := 16
	if i+1 == g.count {
		n = 8
	}
	if _, err := g.side.ReadAt(b[:n], sideHead+8*int64(i)); err != nil {
		return 0, 0, fmt.Errorf("audit: sidecar of %s: %w", g.path, err)
	}
	off, end := int64(binary.BigEndian.Uint64(b[:])), g.size
	if n == 16 {
		end = int64(binary.BigEndian.Uint64(b[8:]))
	}
	if off < int64(len(segMagic)) || end < off || end > g.size {
		return 0, 0, fmt.Errorf("audit: sidecar of %s is damaged", g.path)
	}
	return off, end - off, nil
}

// Sidecar: magic "FSBAUDX1" | first (8) | count (8) | segment size (8) |
// CRC-32C of the offsets (4) | pad (4) | offsets (8 each).
const (
	sideMagic = "FSBAUDX1"
	sideHead  = 8 + 8 + 8 + 8 + 8
)

func encodeSidecar(g *segment) []byte {
	b := make([]byte, sideHead, sideHead+8*len(g.offs))
	copy(b, sideMagic)
	binary.BigEndian.PutUint64(b[8:], g.first)
	binary.BigEndian.PutUint64(b[16:], g.count)
	binary.BigEndian.PutUint64(b[24:], uint64(g.size))
	for _, o := range g.offs {
		b = binary.BigEndian.AppendUint64(b, uint64(o))
	}
	binary.BigEndian.PutUint32(b[32:], crc32.Checksum(b[sideHead:], castagnoli))
	return b
}

// loadSidecar opens the sidecar of a sealed segment if it matches the
// segment file's size; ok is false if it must be rebuilt.
func loadSidecar(path string, size int64) (f *os.File, first, count uint64, ok bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, 0, false
	}
	b, err := io.ReadAll(f)
	if err != nil || len(b) < sideHead || string(b[:8]) != sideMagic ||
		int64(binary.BigEndian.Uint64(b[24:])) != size {
		f.Close()
		return nil, 0, 0, false
	}
	first, count = binary.BigEndian.Uint64(b[8:]), binary.BigEndian.Uint64(b[16:])
	if uint64(len(b)-sideHead) != 8*count || crc32.Checksum(b[sideHead:], castagnoli) != binary.BigEndian.Uint32(b[32:]) {
		f.Close()
		return nil, 0, 0, false
	}
	return f, first, count, true
}

// segLog is the set of segments; the last is the active one, which only
// the writer appends to.
type segLog struct {
	dir string
	log *slog.Logger

	mu   sync.RWMutex
	segs []*segment

	signed uint64 // openLog's signed: the last checkpoint's seq at open

	damaged []uint64 // seqs of the damaged frames kept in scanned segments, at open

	// The next segment, prepared in the background (writer only).
	prep      chan error // a preparation under way (nil: none)
	prepReady bool       // nextPrepared is complete and unused
	prepRetry time.Time  // after a failed or skipped preparation, none before then
	// minFree is the store's MinFreeSpace (negative: unchecked): a
	// preparation starts only with room for it and two segments above it.
	minFree int64
}

// Pre-zeroed segments. Appending to a file makes every fdatasync commit
// the file system's journal too (a new size, new blocks); overwriting
// zeros written and synced earlier does not, as databases do with their
// write-ahead logs. Measured on this project's 2-core machine: a 4–12 KiB
// write plus fdatasync costs ~40 µs of CPU and ~100–120 µs appending,
// ~22 µs and ~60 µs into zeros. A log that has appended prepareAfter
// bytes to a growing segment prepares the next one (segmentSize of zeros,
// synced) in the background, moves to it when it is ready, and prepares
// one ahead from then on; a store that records little never writes zeros.
const nextPrepared = "next.tmp"

// prepareAfter: a variable for tests.
var prepareAfter int64 = 1 << 20

// tornWindow bounds what one batch spans, with room to spare: the writer
// caps a batch at maxBatchBytes framed (store.go, take). Recovery tells a
// batch cut by a power loss from damage by it (openSegment).
const tornWindow = 2 * maxBatchBytes

// prepare starts making nextPrepared in the background (writer only).
func (l *segLog) prepare() {
	if l.prep != nil || l.prepReady || time.Now().Before(l.prepRetry) {
		return
	}
	path, size := filepath.Join(l.dir, nextPrepared), segmentSize
	if l.minFree >= 0 {
		if free, ok := statFree(l.dir); ok && free < uint64(l.minFree)+2*uint64(size) {
			// The zeros would eat the margin above the floor and turn
			// calls away early: grow segments instead, look again soon.
			l.prepRetry = time.Now().Add(time.Second)
			return
		}
	}
	ch := make(chan error, 1)
	l.prep = ch
	go func() { ch <- writeZeros(path, size) }()
}

// ready reports whether a prepared segment waits to be used (writer only).
func (l *segLog) ready() bool {
	if l.prep != nil {
		select {
		case err := <-l.prep:
			l.prep = nil
			if err != nil {
				l.log.Warn("audit: cannot prepare the next log segment; appending to growing ones (retried in a minute)", "err", err)
				l.prepRetry = time.Now().Add(time.Minute)
			} else {
				l.prepReady = true
			}
		default:
		}
	}
	return l.prepReady
}

// dropPrepared removes the unused prepared segment, waiting for one being
// written (writer only, which is refusing batches then anyway): on a
// nearly full file system its space is worth more than faster syncs.
func (l *segLog) dropPrepared() {
	if l.prep != nil {
		<-l.prep
		l.prep, l.prepReady = nil, true
	}
	if l.prepReady {
		if err := os.Remove(filepath.Join(l.dir, nextPrepared)); err == nil || os.IsNotExist(err) {
			l.prepReady = false
		}
	}
	l.prepRetry = time.Now().Add(time.Second)
}

// writeZeros writes path: the segment magic, then zeros up to size, synced.
// The zeros bypass the page cache where the file system allows (direct
// I/O): written through it they cost ~2.4 µs of CPU per audited call on the
// benchmark machine (two records' worth of zeros copied into the cache,
// then written back, then overwritten). The appends that overwrite them
// end on a page boundary (appendBatch), so none has to read a page back
// from the disk first (but the first after a reopen, or after the page
// cache dropped the tail page: one page read).
func writeZeros(path string, size int64) error {
	err := zeroFile(path, size, zeroFlags)
	if err != nil && zeroFlags != 0 {
		// A file system without direct I/O (EINVAL at open or at the
		// first write): through the page cache then.
		err = zeroFile(path, size, 0)
	}
	if err != nil {
		os.Remove(path) // a disk too full for it gets its space back
	}
	return err
}

// zeroFlags: a variable for tests.
var zeroFlags = directIO

var (
	pageSize = os.Getpagesize()
	zeroPage = make([]byte, pageSize) // pads appends to a page boundary (appendBatch)
)

// zeroFile is writeZeros opening path with flags added (directIO or 0).
func zeroFile(path string, size int64, flags int) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|flags, filePerm)
	if err != nil {
		return err
	}
	buf := alignedBuf(1 << 20)
	copy(buf, segMagic)
	for off := int64(0); off < size && err == nil; off += int64(len(buf)) {
		_, err = f.Write(buf[:min(int64(len(buf)), size-off)])
		clear(buf[:len(segMagic)])
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// truncateFile cuts path to size, synced.
func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if err = f.Truncate(size); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// isZero reports whether b holds only zero bytes.
func isZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// openLog opens every segment; a torn tail of the last one (a short frame,
// or a bad frame that no good frame follows: a write cut by a crash, never
// acknowledged) is moved to a .torn file and cut off. Damage elsewhere is
// kept for Verify to name.
//
// signed is the seq the last signed checkpoint names (0: none): a
// checkpoint is written only after the records it signs are synced, so a
// bad tail at or below it is damage, and a writable open refuses it.
func openLog(dir string, logger *slog.Logger, writable bool, signed uint64) (*segLog, error) {
	l := &segLog{dir: dir, log: logger, signed: signed}
	if writable {
		if err := os.MkdirAll(dir, dirPerm); err != nil {
			return nil, err
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil && !(errors.Is(err, os.ErrNotExist) && !writable) {
		return nil, err
	}
	var names []uint64
	for _, e := range ents {
		if writable && (strings.HasSuffix(e.Name(), ".seg.tmp") || strings.HasSuffix(e.Name(), ".idx.tmp")) {
			// A rewrite (Prune) or sidecar a crash cut short: the file it
			// was to replace is intact, the copy is garbage (up to a
			// segment's size). Only the lock holder writes them.
			if err := os.Remove(filepath.Join(dir, e.Name())); err == nil {
				l.log.Info("audit: removed the leftover of an interrupted rewrite", "file", e.Name())
			}
			continue
		}
		n, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok || len(n) != 20 {
			continue
		}
		v, err := strconv.ParseUint(n, 10, 64)
		if err != nil {
			continue
		}
		names = append(names, v)
	}
	if writable {
		_ = os.Remove(filepath.Join(dir, nextPrepared)) // a preparation a crash cut short
	}
	slices.Sort(names)
	for i, name := range names {
		g, err := l.openSegment(name, i == len(names)-1, writable)
		if err != nil {
			l.close()
			return nil, err
		}
		l.segs = append(l.segs, g)
	}
	return l, nil
}

func (l *segLog) openSegment(name uint64, last, writable bool) (*segment, error) {
	path := segPath(l.dir, name, ".seg")
	flag := os.O_RDONLY
	if last && writable {
		flag = os.O_RDWR | syncWrites
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	g := &segment{name: name, path: path, f: f, size: st.Size(), sealed: !last}
	g.refs.Store(1)
	if !last {
		if side, first, count, ok := loadSidecar(segPath(l.dir, name, ".idx"), g.size); ok {
			g.side, g.first, g.count, g.end = side, first, count, g.size
			return g, nil
		}
	}
	data, err := io.ReadAll(io.NewSectionReader(f, 0, g.size))
	if err != nil {
		f.Close()
		return nil, err
	}
	if len(data) < len(segMagic) || string(data[:len(segMagic)]) != segMagic {
		if last && len(data) < len(segMagic) && string(data) == segMagic[:len(data)] {
			data = nil // created, header torn: start it again
		} else {
			f.Close()
			return nil, fmt.Errorf("audit: %s is not an audit log segment", path)
		}
	}
	end := int64(len(data))
	tornBatch := false
	if data != nil {
		// Only zeros from written on: a prepared segment's unused rest (or
		// a size a crash extended before the data came). The scan stops
		// there, but reads a frame that starts before it to its end (a
		// redacted entry may end in zero bytes).
		written := int64(len(bytes.TrimRight(data, "\x00")))
		end = g.scan(data, written)
		if used := max(end, written); used < g.size {
			prepared := g.size
			g.size = used
			if writable && last {
				g.prepared = prepared
			} else if writable && end == used { // sealed, but its zeros were not cut
				if err := truncateFile(path, used); err != nil {
					l.log.Warn("audit: cannot cut a sealed segment's unused zeros", "segment", path, "err", err)
				}
			}
		}
		if last {
			if at, ok := g.tornBatch(data[:g.size], end, l.signed); ok {
				tornBatch = true
				l.log.Error("audit log: the last batch was cut by a crash (its pages reached the disk out of order; its sync never returned, so none of it was acknowledged): cutting it",
					"segment", path, "offset", at, "bytes", g.size-at)
				end = at
			}
		}
	}
	g.end = end
	if end < g.size || data == nil {
		if !last {
			// Not the tail: damage Verify will name. Offsets cover what parsed.
			l.log.Error("audit log segment damaged: unreadable from offset", "segment", path, "offset", end)
		} else if data != nil && !tornBatch && completeFrameIn(data[end+1:g.size], max(g.name, g.first+g.count)) {
			// Complete frames follow the bad one: not a torn tail (a crash
			// cuts only the end of the last write), but damage to records
			// that were acknowledged. Cutting there would drop them and
			// chain new records under their seqs.
			if writable {
				f.Close()
				return nil, fmt.Errorf("audit: %s is damaged at offset %d and complete records follow: not a torn tail, refusing to cut acknowledged records (run fsb audit verify; restore from a backup)", path, end)
			}
			l.log.Error("audit log segment damaged: unreadable from offset", "segment", path, "offset", end)
		} else if cut := max(g.name, g.first+g.count); writable && cut <= l.signed {
			f.Close()
			return nil, fmt.Errorf("audit: %s is damaged at offset %d, in record %d, which the checkpoint at %d signs: not a torn tail, refusing to cut a record that was synced (run fsb audit verify; restore from a backup)", path, end, cut, l.signed)
		} else if writable {
			if err := l.cutTorn(g, data, end); err != nil {
				f.Close()
				return nil, err
			}
		} else {
			g.size = end // read-only: the torn tail is left alone, and ignored
		}
	}
	l.reportDamage(g)
	if !last && writable && end == g.size {
		if err := l.writeSidecar(g); err != nil {
			l.log.Warn("audit: cannot write a segment sidecar", "segment", path, "err", err)
		}
	}
	return g, nil
}

// scan records the offsets of the frames in data and returns where the
// good data ends: at the first short or bad frame that no good frame
// follows. A bad frame with good ones after it is kept (and counted):
// Verify names it, Get refuses it.
//
// From written on data holds only zeros: no frame starts there.
func (g *segment) scan(data []byte, written int64) int64 {
	off := len(segMagic)
	var pending []int64 // bad frames not yet followed by a good one
	for off < len(data) && int64(off) < written {
		seq, _, n, err := cutFrame(data[off:])
		if err == errShortFrame || err == errBadLength {
			break
		}
		if err != nil {
			pending = append(pending, int64(off))
			off += n
			continue
		}
		if g.count == 0 && len(pending) == 0 {
			g.first = seq
		} else if g.count == 0 {
			g.first = seq - uint64(len(pending)) // best guess for the bad ones before it
		}
		for i := range pending {
			g.damaged = append(g.damaged, len(g.offs)+i)
		}
		g.offs = append(g.offs, pending...)
		g.count += uint64(len(pending)) + 1
		pending = pending[:0]
		g.offs = append(g.offs, int64(off))
		off += n
	}
	if len(pending) > 0 {
		return pending[0]
	}
	return int64(off)
}

// tornBatch finds, in the last segment's bytes, a batch a power loss
// cut: its pages reach the disk in any order, so a later one can be there
// while an earlier one still reads as zeros. Only the last batch can be
// torn (every earlier one was synced before the next was written), so it
// is that, not damage, when the first trouble in the last tornWindow
// bytes (a frame kept as damaged, or bytes scan could not parse):
//   - lies above the last signed checkpoint (a checkpoint is written
//     after its records' sync),
//   - is followed by a sector never written: zeros from the trouble to a
//     512-byte boundary, or a whole aligned 512-byte run of zeros (no
//     frame holds one: entries are JSON or short redactions),
//   - and every good frame after it carries one record time (the writer
//     stamps one time per batch): they are what was written of one batch.
//
// It returns where to cut: the frames from there on go with the rest.
func (g *segment) tornBatch(data []byte, end int64, signed uint64) (int64, bool) {
	size := int64(len(data))
	at, idx := end, len(g.offs) // the trouble, and the index of the first frame at or after it
	for _, i := range g.damaged {
		if size-g.offs[i] <= tornWindow {
			at, idx = g.offs[i], i
			break
		}
	}
	if at >= size || size-at > tornWindow {
		return 0, false
	}
	cut := max(g.name, g.first+g.count) // the first seq cut
	if idx < len(g.offs) {
		cut = g.first + uint64(idx)
	}
	if cut <= signed {
		return 0, false
	}
	const sector = 512
	hole := false
	for o := at / sector * sector; o < size && !hole; o += sector {
		hole = o+sector <= size && isZero(data[max(o, at):o+sector])
	}
	if !hole {
		return 0, false
	}
	// Every complete frame after the trouble, parsed or not (a damaged
	// length field hides where the frames after it start).
	var stamp []byte
	one := true
	framesIn(data[at+1:], cut, func(e []byte) bool {
		t, ok := entryTime(e)
		if one = ok && (stamp == nil || bytes.Equal(t, stamp)); one {
			stamp = t
		}
		return one
	})
	if !one {
		return 0, false // frames of more than one batch after it: damage
	}
	g.offs, g.count = g.offs[:idx], uint64(idx)
	g.damaged = slices.DeleteFunc(g.damaged, func(i int) bool { return i >= idx })
	if idx == 0 {
		g.first = 0
	}
	return at, true
}

// entryTime returns the record time an entry carries, as stored.
func entryTime(e []byte) ([]byte, bool) {
	if len(e) < entryHead {
		return nil, false
	}
	body := e[entryHead:]
	switch e[0] {
	case entryFull:
		_, _, t, ok := parseFrame(body)
		return []byte(t), ok
	case entryRedacted, entryRedactedSigned:
		if len(body) < 40 {
			return nil, false
		}
		return body[32:40], true
	}
	return nil, false
}

// maxDamageLines bounds the ERROR lines one segment's damage logs at open.
const maxDamageLines = 10

// reportDamage logs, at open, each damaged frame a scan of g kept (good
// frames follow it, so it is not a torn tail) and remembers its seq. The
// store opens anyway (a writable one chains on): refusing would stop the
// gateway, and the only way out, a restore, would lose acknowledged records.
func (l *segLog) reportDamage(g *segment) {
	for n, i := range g.damaged {
		seq := g.first + uint64(i)
		l.damaged = append(l.damaged, seq)
		if n < maxDamageLines {
			l.log.Error("audit log: record damaged and kept (good records follow it, so not a torn tail); the store opens and chains on, Get refuses this record: run `fsb audit verify` and investigate",
				"seq", seq, "segment", g.path, "offset", g.offs[i])
		}
	}
	if n := len(g.damaged); n > maxDamageLines {
		l.log.Error("audit log: more damaged records in this segment (see Store.Damaged, run `fsb audit verify`)",
			"segment", g.path, "damaged", n, "logged", maxDamageLines)
	}
	g.damaged = nil
}

// completeFrameIn reports whether a frame with a good checksum and a seq
// that can follow next (the seq the damaged frame should have) starts at
// any offset of b (a torn tail holds none: it ends inside its first bad
// frame). The seq test keeps the search linear in garbage.
func completeFrameIn(b []byte, next uint64) bool {
	found := false
	framesIn(b, next, func([]byte) bool { found = true; return false })
	return found
}

// framesIn calls fn with the entry of each frame with a good checksum and
// a seq that can follow next found at any offset of b, in order (the
// search goes on after a frame's end), until fn returns false.
func framesIn(b []byte, next uint64, fn func(entry []byte) bool) {
	top := next + uint64(len(b)/frameHead)
	for i := 0; i+frameHead <= len(b); i++ {
		if l := binary.BigEndian.Uint32(b[i:]); l > maxEntry || frameHead+int(l) > len(b)-i {
			continue
		}
		if seq := binary.BigEndian.Uint64(b[i+8:]); seq < next || seq > top {
			continue
		}
		if _, e, n, err := cutFrame(b[i:]); err == nil {
			if !fn(e) {
				return
			}
			i += n - 1
		}
	}
}

// cutTorn saves the bytes after end and truncates the segment there.
func (l *segLog) cutTorn(g *segment, data []byte, end int64) error {
	if data == nil {
		end = 0
	}
	if end < g.size {
		torn := fmt.Sprintf("%s.torn-%d", g.path, end)
		if data != nil {
			if err := os.WriteFile(torn, data[end:g.size], filePerm); err != nil {
				return err
			}
		}
		l.log.Warn("audit log: cut a torn tail (a write cut by a crash, never acknowledged)",
			"segment", g.path, "offset", end, "bytes", g.size-end, "saved", torn)
	}
	if end == 0 {
		if _, err := g.f.WriteAt([]byte(segMagic), 0); err != nil {
			return err
		}
		end = int64(len(segMagic))
	}
	if err := g.f.Truncate(end); err != nil {
		return err
	}
	if err := g.f.Sync(); err != nil {
		return err
	}
	g.size, g.end, g.prepared = end, end, 0
	return nil
}

// writeSidecar writes g's offsets next to it (temp, sync, rename) and
// drops them from memory.
func (l *segLog) writeSidecar(g *segment) error {
	path := segPath(l.dir, g.name, ".idx")
	if err := writeFileAtomic(path, encodeSidecar(g)); err != nil {
		return err
	}
	side, err := os.Open(path)
	if err != nil {
		return err
	}
	l.mu.Lock()
	g.side, g.offs = side, nil
	l.mu.Unlock()
	return nil
}

// writeFileAtomic replaces path with b: temp file, fsync, rename, fsync
// of the directory.
func writeFileAtomic(path string, b []byte) error {
	tmp := path + ".tmp"
	os.Remove(tmp) // a leftover keeps its mode through O_TRUNC
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, filePerm)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// active returns the segment appended to (nil if none).
func (l *segLog) active() *segment {
	if len(l.segs) == 0 { // callers other than the writer hold mu
		return nil
	}
	return l.segs[len(l.segs)-1]
}

// create starts a new active segment for seq (writer only).
// The prepared segment if one is ready (and the next is started), else a
// growing one.
func (l *segLog) create(seq uint64) (*segment, error) {
	path := segPath(l.dir, seq, ".seg")
	var prepared int64
	if l.ready() {
		l.prepReady = false
		if err := os.Rename(filepath.Join(l.dir, nextPrepared), path); err != nil {
			l.log.Warn("audit: cannot use the prepared log segment; appending to a growing one", "err", err)
		} else {
			prepared = segmentSize
		}
		l.prepare()
	}
	var f *os.File
	var err error
	if prepared > 0 {
		if f, err = os.OpenFile(path, os.O_RDWR|syncWrites, 0); err == nil {
			// Its first page again, the same bytes, now in the page cache:
			// the first batch starts in it (appendBatch pads the end).
			page := make([]byte, min(int64(pageSize), prepared))
			copy(page, segMagic)
			_, err = f.WriteAt(page, 0)
		}
	} else if f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|syncWrites, filePerm); err == nil {
		if _, err = f.Write([]byte(segMagic)); err == nil {
			err = f.Sync()
		}
	}
	if err == nil {
		err = syncDir(l.dir)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		os.Remove(path)
		return nil, err
	}
	g := &segment{name: seq, path: path, f: f, size: int64(len(segMagic)), end: int64(len(segMagic)), prepared: prepared}
	g.refs.Store(1)
	l.mu.Lock()
	l.segs = append(l.segs, g)
	l.mu.Unlock()
	return g, nil
}

// appendBatch writes frames (seqs first…, starting at offsets offs
// relative to b) to the active segment with one write and one sync, then
// publishes them (writer only).
func (l *segLog) appendBatch(b []byte, first uint64, offs []int64) error {
	l.mu.RLock()
	g := l.active()
	l.mu.RUnlock()
	if g != nil && !g.sealed && g.prepared == 0 && g.size >= prepareAfter {
		l.prepare() // a busy log: prepare the next segment
	}
	if g == nil || g.sealed || g.full(int64(len(b))) || g.prepared == 0 && g.count > 0 && l.ready() {
		if g != nil && !g.sealed {
			if err := l.seal(g); err != nil {
				return err
			}
		}
		var err error
		if g, err = l.create(first); err != nil {
			return err
		}
	}
	n := int64(len(b))
	if g.prepared > 0 {
		// Up to the next page boundary, zeros over zeros: a write that
		// ends mid-page leaves a page the next write starts in (still in
		// the page cache), never one it must read from the disk first
		// (the zeros were written around the cache).
		if pad := -(g.size + n) & int64(pageSize-1); g.size+n+pad <= g.prepared {
			b = append(b, zeroPage[:pad]...)
		}
	}
	if _, err := g.f.WriteAt(b, g.size); err != nil {
		return err
	}
	if syncWrites == 0 {
		if err := fdatasync(g.f); err != nil {
			return err
		}
	}
	l.mu.Lock()
	if g.count == 0 {
		g.first = first
	}
	for _, o := range offs {
		g.offs = append(g.offs, g.size+o)
	}
	g.count += uint64(len(offs))
	g.size += n
	g.end = g.size
	l.mu.Unlock()
	return nil
}

// full reports whether a batch of n bytes goes to a new segment: g holds
// segmentSize bytes, or the batch would run past g's prepared zeros
// (unless g is empty: a batch larger than a prepared segment grows it).
func (g *segment) full(n int64) bool {
	if g.prepared > 0 && g.count > 0 {
		return g.size+n > g.prepared
	}
	return g.size >= segmentSize
}

// seal cuts the active segment's unused zeros and writes its sidecar; the
// next batch starts a new segment (writer only).
func (l *segLog) seal(g *segment) error {
	if g.prepared > 0 {
		if err := g.f.Truncate(g.size); err != nil {
			return err
		}
		g.prepared = 0
		if err := g.f.Sync(); err != nil { // the size, with the data
			return err
		}
	} else if err := fdatasync(g.f); err != nil {
		return err
	}
	if err := l.writeSidecar(g); err != nil {
		return err
	}
	l.mu.Lock()
	g.sealed = true
	l.mu.Unlock()
	return nil
}

// roll seals the active segment now if it holds anything: the next
// batch starts a new one (Prune rewrites only sealed segments).
func (l *segLog) roll() error {
	l.mu.RLock()
	g := l.active()
	l.mu.RUnlock()
	if g == nil || g.count == 0 || g.sealed {
		return nil
	}
	return l.seal(g)
}

// acquire returns the segment holding seq, referenced; release it.
func (l *segLog) acquire(seq uint64) (*segment, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i := len(l.segs) - 1; i >= 0; i-- {
		g := l.segs[i]
		if g.count == 0 || seq < g.first {
			continue
		}
		if seq >= g.first+g.count {
			return nil, false
		}
		g.refs.Add(1)
		return g, true
	}
	return nil, false
}

// snapshot returns the segments with their published sizes, referenced.
func (l *segLog) snapshot() []segView {
	l.mu.RLock()
	defer l.mu.RUnlock()
	out := make([]segView, 0, len(l.segs))
	for _, g := range l.segs {
		g.refs.Add(1)
		out = append(out, segView{g: g, mu: &l.mu, size: g.size, first: g.first, count: g.count, sealed: g.sealed})
	}
	return out
}

type segView struct {
	g *segment
	// mu is the log's lock: the writer appends to the active segment's
	// offsets and seals it (sidecar) under it.
	mu           *sync.RWMutex
	size         int64
	first, count uint64
	sealed       bool
}

func releaseAll(vs []segView) {
	for _, v := range vs {
		v.g.release()
	}
}

// read returns the entry stored for seq.
func (l *segLog) read(seq uint64) ([]byte, error) {
	g, ok := l.acquire(seq)
	if !ok {
		if l.unparsed(seq) {
			return nil, fmt.Errorf("audit: record %d: the log is damaged here (run verify)", seq)
		}
		return nil, fmt.Errorf("%w: %d", ErrNotFound, seq)
	}
	defer g.release()
	l.mu.RLock()
	off, n, err := g.frameAt(seq)
	l.mu.RUnlock()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, n)
	if _, err := g.f.ReadAt(buf, off); err != nil {
		return nil, fmt.Errorf("audit: record %d: %w", seq, err)
	}
	fs, entry, _, err := cutFrame(buf)
	if err != nil || fs != seq {
		return nil, fmt.Errorf("audit: record %d: the log is damaged here (run verify)", seq)
	}
	return entry, nil
}

// unparsed reports whether seq falls in a segment (by name: the seq it
// was created for) whose frames could not all be parsed: the record is
// behind damage, not absent, and readers must not skip it as pruned.
func (l *segLog) unparsed(seq uint64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i := len(l.segs) - 1; i >= 0; i-- {
		if g := l.segs[i]; g.name <= seq {
			return g.end < g.size
		}
	}
	return false
}

// lastFrame returns the last frame of the log, by position (Open's head
// recovery: the frame's own seq, whatever the offsets say).
func (l *segLog) lastFrame() (uint64, []byte, bool, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i := len(l.segs) - 1; i >= 0; i-- {
		g := l.segs[i]
		if g.count == 0 {
			continue
		}
		off, n, err := g.frameAt(g.first + g.count - 1)
		if err != nil {
			return 0, nil, false, err
		}
		buf := make([]byte, n)
		if _, err := g.f.ReadAt(buf, off); err != nil {
			return 0, nil, false, err
		}
		seq, entry, _, err := cutFrame(buf)
		if err != nil {
			return 0, nil, false, fmt.Errorf("%s: last frame: %w", g.path, err)
		}
		return seq, entry, true, nil
	}
	return 0, nil, false, nil
}

func (l *segLog) close() {
	if l.prep != nil || l.prepReady {
		l.dropPrepared() // no file is written after close
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range l.segs {
		g.release()
	}
	l.segs = nil
}

// walkFrames calls fn for each frame of vs in file order, starting at the
// frame of seq from when a segment can seek to it (frames before from are
// skipped). fn gets a fresh entry it may keep; err is errBadFrame for a
// checksum mismatch (seq untrusted), or errShortFrame / errBadLength when
// the rest of a segment cannot be parsed (then the walk goes on with the
// next segment). fn returns false to stop.
func walkFrames(vs []segView, from uint64, fn func(seq uint64, entry []byte, err error) bool) error {
	var head [frameHead]byte
	for _, v := range vs {
		if v.count > 0 && from >= v.first+v.count {
			continue
		}
		start := int64(len(segMagic))
		if v.count > 0 && from > v.first {
			v.mu.RLock()
			off, _, err := v.g.frameAt(from)
			v.mu.RUnlock()
			if err != nil {
				return err
			}
			start = off
		}
		r := bufio.NewReaderSize(io.NewSectionReader(v.g.f, start, v.size-start), 64<<10)
		for {
			if _, err := io.ReadFull(r, head[:]); err == io.EOF {
				break
			} else if err != nil {
				if !fn(0, nil, errShortFrame) {
					return nil
				}
				break
			}
			l := binary.BigEndian.Uint32(head[:])
			if l > maxEntry {
				if !fn(0, nil, errBadLength) {
					return nil
				}
				break
			}
			b := make([]byte, frameHead+int(l))
			copy(b, head[:])
			if _, err := io.ReadFull(r, b[frameHead:]); err != nil {
				if !fn(0, nil, errShortFrame) {
					return nil
				}
				break
			}
			seq, entry, _, err := cutFrame(b)
			if err == nil && seq < from {
				continue
			}
			if !fn(seq, entry, err) {
				return nil
			}
		}
	}
	return nil
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
