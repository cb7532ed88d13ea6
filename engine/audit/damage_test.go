package audit

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestDamageKeptIsReported: a bad frame that good frames follow in the
// active segment is damage, not a torn tail, and is kept (README,
// "Recovery"); a writable Open still opens and chains on, but logs it at
// ERROR (record, segment, offset, what to run) and reports it in Damaged.
func TestDamageKeptIsReported(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, testOptions(dir))
	for i := range 6 {
		call(t, s, i)
	}
	s.Close()

	// Flip the last byte of record 5's frame; its CRC no longer matches.
	segs := segFiles(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	b, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	off := len(segMagic)
	for {
		seq, _, n, err := cutFrame(b[off:])
		if err != nil {
			t.Fatal(err)
		}
		if seq == 5 {
			b[off+n-1] ^= 0x01
			break
		}
		off += n
	}
	if err := os.WriteFile(segs[0], b, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, writable := range []bool{false, true} {
		t.Run(fmt.Sprintf("writable=%v", writable), func(t *testing.T) {
			var logs bytes.Buffer
			opt := testOptions(dir)
			opt.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			if !writable {
				opt.Signer = nil
			}
			s, err := Open(opt)
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			defer s.Close()
			if d := s.Damaged(); !slices.Equal(d, []uint64{5}) {
				t.Errorf("Damaged() = %v, want [5]", d)
			}
			var errLines []string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, "level=ERROR") {
					errLines = append(errLines, l)
				}
			}
			if len(errLines) != 1 {
				t.Fatalf("want one ERROR line, got %q", errLines)
			}
			for _, want := range []string{"seq=5", "segment=" + segs[0], fmt.Sprintf("offset=%d", off), "fsb audit verify"} {
				if !strings.Contains(errLines[0], want) {
					t.Errorf("ERROR line %q lacks %q", errLines[0], want)
				}
			}
			if _, err := s.Get(ctx, 5); err == nil {
				t.Error("Get of the damaged record succeeded")
			}
			if v := verify(t, s); v.Problem == nil || v.Problem.Seq != 5 {
				t.Errorf("verify: %+v", v.Problem)
			}
			if writable { // by design it chains on: refusing would take the gateway down
				if rq, _ := call(t, s, 6); rq.Seq != 13 {
					t.Errorf("continued at %d", rq.Seq)
				}
			}
		})
	}
	// A clean store reports nothing.
	if d := newStore(t).Damaged(); d != nil {
		t.Errorf("clean store: Damaged() = %v", d)
	}
}
