package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestPruneAfterStuckClose: once Close gave up with ErrStuck behind a
// stalled Backup, the store is closed for Prune too: it answers ErrClosed
// at once rather than waiting behind the backup deaf to its ctx (a
// reviewer found it did).
func TestPruneAfterStuckClose(t *testing.T) {
	s, release := stalledBackup(t, t.TempDir())
	defer release()
	if err := s.Close(); !errors.Is(err, ErrStuck) {
		t.Fatalf("Close behind a stalled backup: %v", err)
	}
	if _, err := s.Query(context.Background(), Query{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Query after ErrStuck: %v, want ErrClosed", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	pruned := make(chan error, 1)
	go func() { _, err := s.Prune(ctx, time.Now()); pruned <- err }()
	select {
	case err := <-pruned:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Prune after ErrStuck: %v, want ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Errorf("Prune after Close returned ErrStuck is still blocked 2s later (its ctx expired after 200ms)")
	}
}

// TestEntryJSONEscapes: "record" on the wire stays byte-identical to
// the stored bytes for strings encoding/json escapes (HTML characters,
// U+2028, control characters, non-ASCII), through json.Marshal (fiber's
// c.JSON) and an Encoder without HTML escaping.
func TestEntryJSONEscapes(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	r := request(0)
	r.Purpose = "a<b>&c\u2028d\u2029 é \x01 \"q\" \\ \xff"
	r.EndUser = "<script>&amp;</script>"
	c, err := s.Begin(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Finish(ctx, Outcome{Status: 500, Problem: "x<&>y"}); err != nil {
		t.Fatal(err)
	}
	p, err := s.Query(ctx, Query{})
	if err != nil || len(p.Entries) != 2 {
		t.Fatalf("%v %v", p, err)
	}
	for _, escapeHTML := range []bool{true, false} {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(escapeHTML)
		if err := enc.Encode(p); err != nil {
			t.Fatal(err)
		}
		var wire struct {
			Entries []struct {
				Record json.RawMessage `json:"record"`
			} `json:"entries"`
		}
		if err := json.Unmarshal(buf.Bytes(), &wire); err != nil {
			t.Fatal(err)
		}
		for i, e := range wire.Entries {
			if !bytes.Equal(e.Record, p.Entries[i].Raw) {
				t.Errorf("escapeHTML=%v: record %d on the wire\n%s\nstored\n%s", escapeHTML, p.Entries[i].Seq, e.Record, p.Entries[i].Raw)
			}
		}
	}
}

// TestReadOnlyIndexFarBehind: a read-only store whose index is missing (a
// restored backup holds none) rebuilds it in a scratch directory outside
// Dir, its memory bounded by the flush size, removed on Close (a reviewer
// found it all held in memory).
func TestReadOnlyIndexFarBehind(t *testing.T) {
	dir := t.TempDir()
	opt := testOptions(dir)
	opt.IndexFlushEntries = 64
	s := openStore(t, opt)
	for i := range 200 {
		call(t, s, i)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	ro := opt
	ro.Signer = nil
	r := openStore(t, ro)
	scratch := r.scratch
	defer func() {
		r.Close()
		if _, err := os.Stat(scratch); scratch == "" || !os.IsNotExist(err) {
			t.Errorf("scratch index %q after Close: %v", scratch, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "index")); !os.IsNotExist(err) {
			t.Errorf("a read-only open wrote an index under Dir: %v", err)
		}
	}()
	if p, err := r.Query(context.Background(), Query{Subject: request(0).Subject}); err != nil || len(p.Entries) != 40 {
		t.Errorf("subject query on the rebuilt index: %d entries, %v", len(p.Entries), err)
	}
	st := r.idx.Stats()
	t.Logf("read-only index: %+v", st)
	if st.MemEntries > 2*opt.IndexFlushEntries {
		t.Errorf("a read-only open holds %d index pairs in %d frozen memtables (FlushEntries %d): memory grows with the log, unbounded",
			st.MemEntries, st.Frozen, opt.IndexFlushEntries)
	}
}

// TestPageOfANewerVersion: a page holding one record of a version this
// client does not know (a newer server's) still reads: that entry keeps its
// bytes, the others decode (a reviewer found the whole page failed, so
// fsb audit query -admin printed nothing).
func TestPageOfANewerVersion(t *testing.T) {
	body := `{"entries":[{"seq":1,"prev":"` + zeroHex + `","hash":"` + zeroHex + `","record":{"v":3,"seq":1,"time":"2026-01-01T00:00:00.000000000Z","kind":"request","call":"c","org":"o","newField":1}}]}`
	var p Page
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Errorf("a page with one record of a newer version does not decode at all: %v", err)
	}
}

const zeroHex = "0000000000000000000000000000000000000000000000000000000000000000"

// TestExportWaitsForBackup: an Export does not run beside a Prune or a
// Backup (a Prune could delete the segment its range starts in); it waits
// as long as its ctx allows, then runs once the other ends.
func TestExportWaitsForBackup(t *testing.T) {
	s, release := stalledBackup(t, t.TempDir())
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var buf bytes.Buffer
	if _, err := s.Export(ctx, &buf, ExportOptions{}); !errors.Is(err, context.DeadlineExceeded) || buf.Len() != 0 {
		t.Fatalf("Export beside a running backup: %v, %d bytes", err, buf.Len())
	}
	release()
	if rep, err := s.Export(context.Background(), &buf, ExportOptions{}); err != nil || rep.Records != 2 {
		t.Fatalf("Export after the backup: %+v %v", rep, err)
	}
}
