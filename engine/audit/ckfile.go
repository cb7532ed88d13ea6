package audit

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// The checkpoints file (Dir/checkpoints) is append-only, of fixed-size
// frames in seq order:
//
//	seq (8, BE) | head (32) | time (8, Unix ns) | Ed25519 signature (64) | CRC-32C (4)
//
// A frame is written (and synced) after the log sync of the records it
// signs, so a checkpoint never names a record that is not on disk. A
// partial or checksum-bad last frame is a write cut by a crash: it is cut
// off on Open (never acknowledged). The anchor (Dir/anchor) is one such
// frame, with prev in place of head, replaced atomically.
const (
	ckBody = 8 + 32 + 8 + 64
	ckSize = ckBody + 4
)

func encodeCkFrame(seq uint64, h Hash, t time.Time, sig []byte) ([]byte, error) {
	if len(sig) != 64 {
		return nil, fmt.Errorf("audit: a signature of %d bytes (Ed25519 has 64)", len(sig))
	}
	b := make([]byte, 0, ckSize)
	b = binary.BigEndian.AppendUint64(b, seq)
	b = append(b, h[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(t.UnixNano()))
	b = append(b, sig...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

func decodeCkFrame(b []byte) (Checkpoint, bool) {
	if len(b) != ckSize || crc32.Checksum(b[:ckBody], castagnoli) != binary.BigEndian.Uint32(b[ckBody:]) {
		return Checkpoint{}, false
	}
	var c Checkpoint
	c.Seq = binary.BigEndian.Uint64(b)
	copy(c.Head[:], b[8:40])
	c.Time = time.Unix(0, int64(binary.BigEndian.Uint64(b[40:48]))).UTC()
	c.Signature = append([]byte(nil), b[48:ckBody]...)
	return c, true
}

type ckFile struct {
	path string
	f    *os.File
	mu   sync.RWMutex
	n    int64 // frames published
}

func openCkFile(path string, writable bool, log *slog.Logger) (*ckFile, error) {
	flag := os.O_RDONLY
	if writable {
		flag = os.O_RDWR | os.O_CREATE
	}
	f, err := os.OpenFile(path, flag, filePerm)
	if errors.Is(err, os.ErrNotExist) && !writable {
		return &ckFile{path: path}, nil
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	c := &ckFile{path: path, f: f, n: st.Size() / ckSize}
	end := c.n * ckSize
	if c.n > 0 { // a torn last frame: cut it off
		b := make([]byte, ckSize)
		if _, err := f.ReadAt(b, end-ckSize); err != nil {
			f.Close()
			return nil, err
		}
		if _, ok := decodeCkFrame(b); !ok {
			c.n--
			end -= ckSize
		}
	}
	if end != st.Size() {
		if writable {
			log.Warn("audit checkpoints: cut a torn last frame (a write cut by a crash)", "file", path, "bytes", st.Size()-end)
			if err := f.Truncate(end); err != nil {
				f.Close()
				return nil, err
			}
		}
	}
	return c, nil
}

// append writes and syncs one checkpoint (writer only).
func (c *ckFile) append(ck Checkpoint) error {
	b, err := encodeCkFrame(ck.Seq, ck.Head, ck.Time, ck.Signature)
	if err != nil {
		return err
	}
	c.mu.RLock()
	n := c.n
	c.mu.RUnlock()
	if _, err := c.f.WriteAt(b, n*ckSize); err != nil {
		return err
	}
	if err := fdatasync(c.f); err != nil {
		return err
	}
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return nil
}

func (c *ckFile) count() int64 {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.n
}

// at reads frame i; ok is false if it is damaged.
func (c *ckFile) at(i int64) (Checkpoint, bool, error) {
	b := make([]byte, ckSize)
	if _, err := c.f.ReadAt(b, i*ckSize); err != nil {
		return Checkpoint{}, false, err
	}
	ck, ok := decodeCkFrame(b)
	return ck, ok, nil
}

// last returns the newest readable checkpoint.
func (c *ckFile) last() (Checkpoint, bool, error) {
	for i := c.count() - 1; i >= 0; i-- {
		ck, ok, err := c.at(i)
		if err != nil {
			return Checkpoint{}, false, err
		}
		if ok {
			return ck, true, nil
		}
	}
	return Checkpoint{}, false, nil
}

// atOrAfter returns the first readable checkpoint with Seq >= seq (binary
// search: checkpoints are in seq order).
func (c *ckFile) atOrAfter(seq uint64) (Checkpoint, bool, error) {
	lo, hi := int64(0), c.count()
	for lo < hi {
		m := lo + (hi-lo)/2
		ck, ok, err := c.at(m)
		if err != nil {
			return Checkpoint{}, false, err
		}
		if ok && ck.Seq < seq {
			lo = m + 1
		} else {
			hi = m
		}
	}
	for i := lo; i < c.count(); i++ {
		ck, ok, err := c.at(i)
		if err != nil {
			return Checkpoint{}, false, err
		}
		if ok && ck.Seq >= seq {
			return ck, true, nil
		}
	}
	return Checkpoint{}, false, nil
}

// reader streams the published frames in order.
func (c *ckFile) reader() *ckReader {
	if c.f == nil {
		return &ckReader{}
	}
	return &ckReader{r: bufio.NewReader(io.NewSectionReader(c.f, 0, c.count()*ckSize))}
}

type ckReader struct {
	r *bufio.Reader
}

// next returns the next frame (ok false at the end; bad if unreadable).
func (r *ckReader) next() (ck Checkpoint, bad, ok bool, err error) {
	if r.r == nil {
		return Checkpoint{}, false, false, nil
	}
	b := make([]byte, ckSize)
	if _, err := io.ReadFull(r.r, b); err == io.EOF {
		return Checkpoint{}, false, false, nil
	} else if err != nil {
		return Checkpoint{}, false, false, err
	}
	ck, good := decodeCkFrame(b)
	if !good {
		ck.Seq = binary.BigEndian.Uint64(b) // untrusted, for ordering
	}
	return ck, !good, true, nil
}

func (c *ckFile) close() {
	if c.f != nil {
		c.f.Close()
	}
}

// readAnchor reads Dir/anchor (nil if there is none). A damaged anchor
// reads as an empty one, which fails its signature check in Verify.
func readAnchor(path string) (*Anchor, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	c, ok := decodeCkFrame(b)
	if !ok {
		return &Anchor{}, nil
	}
	return &Anchor{Seq: c.Seq, Prev: c.Head, Time: c.Time, Signature: c.Signature}, nil
}

func writeAnchor(path string, a Anchor) error {
	b, err := encodeCkFrame(a.Seq, a.Prev, a.Time, a.Signature)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, b)
}
