package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// validSegment is a segment of n frames and the frames it holds.
func validSegment(n int) ([]byte, []rawFrame) {
	b := []byte(segMagic)
	var fs []rawFrame
	for i := range n {
		e := fmt.Appendf(nil, "entry %d %s", i, bytes.Repeat([]byte{byte('a' + i)}, i*7))
		b = appendFrame(b, uint64(i+1), e)
		fs = append(fs, rawFrame{uint64(i + 1), e})
	}
	return b, fs
}

// FuzzSegment corrupts a valid segment (a byte flipped, the tail cut, or
// bytes of the fuzzer's own appended) and opens it as the log's last
// segment: recovery never panics, and every record it yields — by a walk
// or by Get's path — is one that was written, under its own seq.
func FuzzSegment(f *testing.F) {
	f.Add(uint16(0), byte(0), uint16(0), []byte(nil))
	f.Add(uint16(20), byte(1), uint16(0), []byte(nil))
	f.Add(uint16(0), byte(0), uint16(30), []byte{0, 0, 0, 5})
	f.Add(uint16(9), byte(0xff), uint16(3), []byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, pos uint16, x byte, cut uint16, extra []byte) {
		b, orig := validSegment(6)
		if int(pos) < len(b) {
			b[pos] ^= x
		}
		b = b[:len(b)-min(int(cut), len(b))]
		b = append(b, extra...)
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.seg", 1)), b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, writable := range []bool{false, true} {
			l, err := openLog(dir, quietLogger, writable, 0)
			if err != nil {
				continue // not a segment at all: refused, not guessed
			}
			known := func(seq uint64, e []byte) {
				if seq == 0 || seq > uint64(len(orig)) || !bytes.Equal(orig[seq-1].entry, e) {
					t.Fatalf("yielded a record never written: seq %d %q", seq, e)
				}
			}
			vs := l.snapshot()
			walkFrames(vs, 0, func(seq uint64, e []byte, err error) bool {
				if err == nil {
					known(seq, e)
				}
				return true
			})
			releaseAll(vs)
			for seq := uint64(0); seq <= uint64(len(orig))+1; seq++ {
				if e, err := l.read(seq); err == nil {
					known(seq, e)
				}
			}
			l.close()
		}
	})
}

func TestCutFrame(t *testing.T) {
	b, fs := validSegment(3)
	off := len(segMagic)
	for _, want := range fs {
		seq, e, n, err := cutFrame(b[off:])
		if err != nil || seq != want.seq || !bytes.Equal(e, want.entry) {
			t.Fatalf("frame %d: %d %q %v", want.seq, seq, e, err)
		}
		off += n
	}
	if _, _, _, err := cutFrame(b[len(segMagic) : len(b)-1]); err != nil {
		t.Fatalf("a whole first frame: %v", err)
	}
	last := b[len(b)-frameHead-len(fs[2].entry):]
	if _, _, _, err := cutFrame(last[:len(last)-1]); err != errShortFrame {
		t.Errorf("short: %v", err)
	}
	bad := bytes.Clone(last)
	bad[len(bad)-1] ^= 1
	if _, _, _, err := cutFrame(bad); err != errBadFrame {
		t.Errorf("bad checksum: %v", err)
	}
}
