package audit

import (
	"bytes"
	"errors"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden records of the current version")

// goldenRecords are encoded by the current version. The files under
// testdata are committed: when Version moves on, keep the v1 files and
// their expectations here unchanged (decode only) so that old records
// provably stay readable.
var goldenRecords = map[string]Record{
	"record_v1_request.json": {
		V: 1, Seq: 41, Time: time.Date(2026, 3, 2, 9, 30, 0, 123456789, time.UTC), Kind: KindRequest,
		Call: "3f1c0e5a9b7d4c2e8a6f1b3d5c7e9a0b", Organisation: "0212345678", Application: "tax-portal",
		Credential: "cert:9f86d081884c7d65", ClientIP: "192.0.2.10", EndUser: "official-7",
		Purpose: "income-tax-check", Grant: "g-42", LegalBasis: "law: Law of 8 August 1983, art. 5",
		Service: "person", ServiceVersion: "v1",
		Subject: "hmac-sha256:s1:5d41402abc4b2a76b9719d911017c592aa0b3b5e2c81f1e3a7ef3a5b6e1c0d2f",
		TraceIn: "c-trace-1", TraceOut: "0af7651916cd43dd8448eb211c80319c",
		Decision: &Decision{Allowed: true},
	},
	"record_v1_outcome.json": {
		V: 1, Seq: 42, Time: time.Date(2026, 3, 2, 9, 30, 0, 131000000, time.UTC), Kind: KindOutcome,
		Call: "3f1c0e5a9b7d4c2e8a6f1b3d5c7e9a0b", Request: 41, Organisation: "0212345678",
		Application: "tax-portal", Service: "person", ServiceVersion: "v1",
		TraceIn: "c-trace-1", TraceOut: "0af7651916cd43dd8448eb211c80319c",
		Status: 200, Digest: "sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae",
		Released: []string{"name", "address.city"},
		Sources: []SourceRec{{
			Source: "nationalRegister", Operation: "getPerson", TraceID: "b7ad6b7169203331",
			SourceTrace: "nr-77", Status: 200, Latency: 4200 * time.Microsecond, Bytes: 912, Attempts: 1,
			Digest: "sha256:fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9",
		}},
	},
	// v2: an enterprise profile whose director was looked up in the person
	// register, the director named per source call.
	"record_v2_outcome.json": {
		V: 2, Seq: 44, Time: time.Date(2026, 11, 29, 10, 5, 0, 250000000, time.UTC), Kind: KindOutcome,
		Call: "6b86b273ff34fce19d6b804eff5a3f57", Request: 43, Organisation: "0212345678",
		Application: "procurement", Service: "enterpriseProfile", ServiceVersion: "1.0.0",
		TraceOut: "d4735e3a265e16eee03f59718b9b5d03",
		Status:   200, Digest: "sha256:4e07408562bedb8b60ce05c1decfe3ad16b72230967de01f640b7e4729b49fce",
		Released: []string{"name", "directors"},
		Sources: []SourceRec{{
			Source: "enterpriseRegister", Operation: "getEnterprise", TraceID: "e1", Status: 200,
			Latency: 3100 * time.Microsecond, Bytes: 1024, Attempts: 1,
			Digest: "sha256:ef2d127de37b942baad06145e54b0c619a1f22327b2ebbcfbec78f5564afe39d",
		}, {
			Source: "personRegister", Operation: "getPerson", TraceID: "p1", Status: 200,
			Latency: 2900 * time.Microsecond, Bytes: 640, Attempts: 1,
			Digest:  "sha256:e7f6c011776e8db7cd330b54174fd76f7d0216b612387a5ffcfb81e6f0919683",
			Subject: "hmac-sha256:s1:9f14025af0065b30e47e23ebb3b491d39ae8ed17d33739e5ff3827ffb3634953",
		}},
	},
	"record_v1_refused.json": {
		V: 1, Seq: 43, Time: time.Date(2026, 3, 2, 9, 31, 0, 0, time.UTC), Kind: KindRefused,
		Call: "9e107d9d372bb6826bd81d3542a419d6", Organisation: "0212345678", ClientIP: "198.51.100.7",
		Purpose: "curiosity", Service: "person", ServiceVersion: "v1", TraceOut: "e4d909c290d0fb1ca068ffaddf22cbd0",
		Decision: &Decision{Allowed: false, Reason: "purpose not covered by the grant"},
		Status:   403, Problem: "urn:problem-type:belgif:missingPermission",
	},
}

// goldenDigests pin the committed bytes: -update cannot silently change
// what a v1 record looks like.
var goldenDigests = map[string]string{
	"record_v1_request.json": "sha256:a51741c9a312b21d4b497993e0d808546b3627a3adbfb1b1e6154bc48ec7e587",
	"record_v1_outcome.json": "sha256:ea456ddfc7ff0cb28f34b11632f0db5950b92380be4502e8ff4be7cf341db8b6",
	"record_v1_refused.json": "sha256:ddd9972ad4576fbd693f8b3c13cc7ce681a866532400b1fe786dfa5b2e540f28",
	"record_v2_outcome.json": "sha256:56cab2757f5347be1f71c62d3bd84d655778f2ea9d870a50b3eee16e3bb82376",
}

func TestGoldenRecords(t *testing.T) {
	for name, want := range goldenRecords {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join("testdata", name)
			if *update && want.V == Version {
				b, err := Encode(&want)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			b = bytes.TrimSuffix(b, []byte("\n"))
			if d := Digest(b); d != goldenDigests[name] {
				t.Errorf("committed record changed: digest %s", d)
			}
			got, err := Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := mustEncode(t, &got), mustEncode(t, &want); !bytes.Equal(g, w) {
				t.Errorf("decoded\n%s\nwant\n%s", g, w)
			}
			if got.Seq != want.Seq || !got.Time.Equal(want.Time) || got.Kind != want.Kind {
				t.Errorf("frame: got %d %v %s", got.Seq, got.Time, got.Kind)
			}
			// A record of the current version must still encode to the
			// committed bytes: the canonical form is what gets hashed.
			if want.V == Version {
				if enc := mustEncode(t, &want); !bytes.Equal(enc, b) {
					t.Errorf("encode changed:\n%s\nwant\n%s", enc, b)
				}
			}
		})
	}
}

func mustEncode(t testing.TB, r *Record) []byte {
	t.Helper()
	b, err := Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`{"v":3,"seq":1,"time":"2026-01-01T00:00:00Z","kind":"request"}`, ErrUnknownVersion},
		{`{"seq":1}`, ErrBadRecord},
		{`not json`, ErrBadRecord},
		{`{"v":1,"seq":1,"time":"yesterday","kind":"request"}`, ErrBadRecord},
		{`{"v":1,"seq":"one"}`, ErrBadRecord},
	} {
		if _, err := Decode([]byte(tc.in)); !errors.Is(err, tc.want) {
			t.Errorf("Decode(%s) = %v, want %v", tc.in, err, tc.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for name := range goldenRecords {
		if b, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"v":1,"seq":1,"time":"2026-01-01T00:00:00+02:00","kind":"outcome","released":[],"sources":[{"source":"\xff"}]}`))
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`{"v":2,"seq":1,"time":"2026-01-01T00:00:00Z","kind":"outcome","sources":[{"source":"s","subject":"\xff"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes into the canonical form, which is a
		// fixed point: decode(encode(r)) encodes to the same bytes.
		c1, err := Encode(&r)
		if err != nil {
			t.Fatalf("encode of a decoded record: %v", err)
		}
		r2, err := Decode(c1)
		if err != nil {
			t.Fatalf("canonical form does not decode: %v\n%s", err, c1)
		}
		c2, _ := Encode(&r2)
		if !bytes.Equal(c1, c2) {
			t.Fatalf("canonical form is not stable:\n%s\n%s", c1, c2)
		}
		if v, seq, _, ok := parseFrame(c1); !ok || v != Version || seq != r.Seq {
			t.Fatalf("canonical form has no frame: %s", c1)
		}
	})
}

// TestAppendTime: appendTime writes what AppendFormat writes for
// timeLayout, across the range records carry and at its edges.
func TestAppendTime(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	times := []time.Time{
		time.Unix(0, 0), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(-1, 1, 1, 0, 0, 0, 1, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(2026, 11, 29, 7, 5, 3, 4005, time.FixedZone("x", 3600)),
	}
	for range 100000 {
		times = append(times, time.Unix(rng.Int64N(1<<37)-1<<36, rng.Int64N(1e9)))
	}
	for _, tm := range times {
		want := tm.UTC().AppendFormat(nil, timeLayout)
		if got := appendTime(nil, tm); string(got) != string(want) {
			t.Fatalf("appendTime(%v) = %s, want %s", tm, got, want)
		}
	}
}
