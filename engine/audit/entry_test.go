package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"testing"
	"time"
)

// FuzzParseEntry: parseEntry never panics, and an entry it accepts is
// written back byte for byte by the function that makes its format — so
// a stored entry has one reading only.
func FuzzParseEntry(f *testing.F) {
	var prev, hash Hash
	prev[0], hash[0] = 1, 2
	full := appendEntry(nil, prev, hash, []byte(`{"v":2,"seq":9}`))
	e := entry{prev: prev, hash: hash, digest: recordDigest([]byte("x")), time: time.Unix(0, 1234).UTC(), service: "svc0"}
	unsigned := redactedEntry(&e)
	e.sig = ed25519.Sign(testKey, RedactionMessage(9, e.digest, e.time, e.service))
	for _, seed := range [][]byte{full, unsigned, redactedEntry(&e), {3}, unsigned[:entryHead+39]} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, v []byte) {
		e, err := parseEntry(9, v)
		if err != nil {
			return
		}
		var back []byte
		if e.redacted {
			back = redactedEntry(&e)
		} else {
			back = appendEntry(nil, e.prev, e.hash, e.record)
		}
		if !bytes.Equal(back, v) {
			t.Fatalf("entry %x reads back as %x", v, back)
		}
	})
}

// exportFixture is an export of a store with a signed redaction and
// checkpoints, under testKey: the fuzzer's seed, fixed so that every
// fuzzing process reads the same one. AUDIT_UPDATE_EXPORT=1 writes it anew.
const exportFixture = "testdata/export-v2.jsonl"

func TestExportFixture(t *testing.T) {
	if os.Getenv("AUDIT_UPDATE_EXPORT") != "" {
		opt := testOptions(t.TempDir())
		opt.Services = map[string]Policy{"svc0": {Retention: time.Hour}}
		fillStore(t, opt, 0, 6)
		s := openStore(t, opt)
		ctx := context.Background()
		if _, err := s.Prune(ctx, time.Now().Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		var exp bytes.Buffer
		if _, err := s.Export(ctx, &exp, ExportOptions{}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		if err := os.WriteFile(exportFixture, exp.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(exportFixture)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyExport(context.Background(), bytes.NewReader(b), testPub)
	if err != nil || !rep.OK() || rep.Redacted == 0 || rep.UnsignedRedactions != 0 || !rep.Anchored || rep.Signed < rep.Last {
		t.Fatalf("%s: %+v %v", exportFixture, rep, err)
	}
}

// FuzzVerifyExport: an export file is read from outside (an auditor gets
// it); VerifyExport never panics on one, and one it accepts holds, under
// the store's checkpoints, only the records the store wrote.
func FuzzVerifyExport(f *testing.F) {
	good, err := os.ReadFile(exportFixture)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(bytes.ReplaceAll(good, []byte(`"signature":"`), []byte(`"signature":"A`)))
	f.Add([]byte(`{"type":"redacted","seq":1,"prev":"00","hash":"00","signature":"AAAA"}`))
	records := exportRecords(good)
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := VerifyExport(context.Background(), bytes.NewReader(b), testPub)
		if err != nil || !rep.OK() {
			return
		}
		for seq, rec := range exportRecords(b) {
			if seq <= rep.Signed && !bytes.Equal(rec, records[seq]) {
				t.Fatalf("record %d accepted under the checkpoint at %d, but the store wrote %q, not %q", seq, rep.Signed, records[seq], rec)
			}
		}
	})
}

// exportRecords maps seq to the record bytes of an export's record lines
// (the lines that parse).
func exportRecords(b []byte) map[uint64][]byte {
	out := map[uint64][]byte{}
	for _, line := range bytes.Split(b, []byte("\n")) {
		var l ExportLine
		if json.Unmarshal(line, &l) == nil && l.Type == "record" {
			out[l.Seq] = l.Record
		}
	}
	return out
}
