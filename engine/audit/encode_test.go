package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
	"time"
)

// marshalPayloadJSON is the reference encoder appendPayload replaces:
// encoding/json over the frozen struct of the current version.
func marshalPayloadJSON(r *Record) ([]byte, error) {
	var p payloadV2
	p.from(r)
	return json.Marshal(&p)
}

func checkEncode(t *testing.T, r *Record) {
	t.Helper()
	want, err := marshalPayloadJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	if got := appendPayload(nil, r); !bytes.Equal(got, want) {
		t.Fatalf("appendPayload differs from encoding/json\n got %s\nwant %s", got, want)
	}
}

// tricky are the inputs encoding/json treats specially.
var tricky = []string{"", "plain", `"quoted" \ back`, "<script>&amp;</script>", "tab\tnl\nret\rbs\bff\f",
	"\x00\x01\x1f\x7f", "\u2028\u2029", "héllo wörld €", "bad \xff\xfe utf8 \xc3", "\xe2\x80", "😀 \U0010FFFF"}

// alphabet mixes bytes that need escaping with pieces of multi-byte runes
// (U+2028, é), so random strings hit valid, escaped and invalid UTF-8.
const alphabet = "a<>&\"\\\x00\n\xe2\x80\xa8\xc3\xa9"

// randomRecord fills every field, each often empty, from tricky strings
// and random bytes.
func randomRecord(rng *rand.Rand) *Record {
	str := func() string {
		switch rng.IntN(4) {
		case 0:
			return ""
		case 1:
			return tricky[rng.IntN(len(tricky))]
		default:
			b := make([]byte, rng.IntN(12))
			for i := range b {
				if rng.IntN(3) == 0 {
					b[i] = byte(rng.IntN(256))
				} else {
					b[i] = alphabet[rng.IntN(len(alphabet))]
				}
			}
			return string(b)
		}
	}
	num := func() int64 {
		switch rng.IntN(3) {
		case 0:
			return 0
		case 1:
			return rng.Int64N(1000) - 500
		default:
			return rng.Int64()
		}
	}
	bs := func() []byte {
		switch rng.IntN(3) {
		case 0:
			return nil
		case 1:
			return []byte{}
		default:
			b := make([]byte, rng.IntN(20))
			for i := range b {
				b[i] = byte(rng.IntN(256))
			}
			return b
		}
	}
	r := &Record{Kind: Kind(str()), Call: str(), Request: uint64(num()),
		Organisation: str(), Application: str(), Credential: str(), ClientIP: str(), EndUser: str(),
		Purpose: str(), Grant: str(), LegalBasis: str(), Service: str(), ServiceVersion: str(), Environment: str(),
		Subject: str(), SubjectClear: str(), TraceIn: str(), TraceOut: str(),
		Status: int(num()), Problem: str(), Digest: str()}
	if rng.IntN(2) == 0 {
		r.Decision = &Decision{Allowed: rng.IntN(2) == 0, Reason: str()}
	}
	switch rng.IntN(3) {
	case 1:
		r.Released = []string{}
	case 2:
		for range 1 + rng.IntN(3) {
			r.Released = append(r.Released, str())
		}
	}
	for range rng.IntN(4) {
		r.Sources = append(r.Sources, SourceRec{Source: str(), Operation: str(), TraceID: str(),
			SourceTrace: str(), Status: int(num()), Latency: time.Duration(num()), Bytes: num(),
			Attempts: int(num()), Digest: str(), Error: str(), Subject: str(), SubjectClear: str()})
	}
	if rng.IntN(3) == 0 {
		r.RequestBody = &SealedBody{Alg: str(), KeyID: str(), Nonce: bs(), Data: bs()}
	}
	if rng.IntN(3) == 0 {
		r.ResponseBody = &SealedBody{Alg: str(), KeyID: str(), Nonce: bs(), Data: bs()}
	}
	return r
}

func TestEncodeMatchesJSON(t *testing.T) {
	for _, s := range tricky {
		checkEncode(t, &Record{Kind: KindOutcome, Call: s, Organisation: s, Released: []string{s},
			Sources: []SourceRec{{Source: s, Error: s}}, Decision: &Decision{Reason: s}})
	}
	rng := rand.New(rand.NewPCG(5, 8))
	for range 20000 {
		checkEncode(t, randomRecord(rng))
	}
}

// FuzzEncodeMatchesJSON: go test -run '^$' -fuzz FuzzEncodeMatchesJSON ./engine/audit/
func FuzzEncodeMatchesJSON(f *testing.F) {
	for i, s := range tricky {
		f.Add(s, tricky[(i+1)%len(tricky)], int64(i), uint64(i))
	}
	f.Fuzz(func(t *testing.T, a, b string, n int64, seed uint64) {
		rng := rand.New(rand.NewPCG(seed, uint64(n)))
		r := randomRecord(rng)
		r.Organisation, r.Purpose, r.Status = a, b, int(n)
		r.Sources = append(r.Sources, SourceRec{Source: b, TraceID: a, Latency: time.Duration(n), Bytes: n})
		checkEncode(t, r)
	})
}
