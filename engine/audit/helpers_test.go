package audit

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"
)

var (
	testKey     = ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	testPub     = testKey.Public().(ed25519.PublicKey)
	subjectKey  = Key{ID: "s1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	bodyKey     = Key{ID: "b1", Secret: []byte("fedcba9876543210fedcba9876543210")}
	quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
)

func testOptions(dir string) Options {
	return Options{
		Dir:                dir,
		Signer:             testKey,
		CheckpointEvery:    4,
		CheckpointInterval: time.Hour,
		SubjectKeys:        []Key{subjectKey},
		BodyKeys:           []Key{bodyKey},
		Logger:             quietLogger,
	}
}

func openStore(t testing.TB, opt Options) *Store {
	t.Helper()
	s, err := Open(opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newStore(t testing.TB) *Store {
	t.Helper()
	s := openStore(t, testOptions(t.TempDir()))
	t.Cleanup(func() { s.Close() })
	return s
}

func request(i int) Request {
	return Request{
		Organisation:   fmt.Sprintf("org%d", i%3),
		Application:    "app",
		Credential:     "cert:ab12",
		ClientIP:       "192.0.2.10",
		EndUser:        "official-7",
		Purpose:        "tax-check",
		Grant:          "g-1",
		LegalBasis:     "law: Law of 8 August 1983, art. 5",
		Service:        fmt.Sprintf("svc%d", i%2),
		ServiceVersion: "v1",
		Subject:        fmt.Sprintf("8501011234%d", i%5),
		TraceIn:        fmt.Sprintf("in-%d", i),
		TraceOut:       fmt.Sprintf("out-%d", i),
	}
}

func outcome(i int) Outcome {
	return Outcome{
		Status:   200,
		Response: fmt.Appendf(nil, `{"n":%d}`, i),
		Released: []string{"name", "address"},
		Sources: []SourceCall{{
			Source: "register", Operation: "get", TraceID: fmt.Sprintf("src-%d", i),
			Status: 200, Latency: 1500 * time.Microsecond, Bytes: 812, Attempts: 1,
			Digest: Digest([]byte("answer")),
		}},
	}
}

// call writes one request and outcome record (two seqs).
func call(t testing.TB, s *Store, i int) (Receipt, Receipt) {
	t.Helper()
	ctx := context.Background()
	c, err := s.Begin(ctx, request(i))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := c.Finish(ctx, outcome(i))
	if err != nil {
		t.Fatal(err)
	}
	return c.Receipt(), rc
}

func verify(t testing.TB, s *Store) Report {
	t.Helper()
	rep, err := Verify(context.Background(), s, testPub)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func rawGet(t testing.TB, s *Store, k []byte) []byte {
	t.Helper()
	var v []byte
	err := s.db.View(func(txn *badger.Txn) error {
		it, err := txn.Get(k)
		if err != nil {
			return err
		}
		v, err = it.ValueCopy(nil)
		return err
	})
	if err != nil {
		t.Fatalf("get %q: %v", k, err)
	}
	return v
}

func rawSet(t testing.TB, s *Store, k, v []byte) {
	t.Helper()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Set(k, v) }); err != nil {
		t.Fatal(err)
	}
}

func rawDelete(t testing.TB, s *Store, k []byte) {
	t.Helper()
	if err := s.db.Update(func(txn *badger.Txn) error { return txn.Delete(k) }); err != nil {
		t.Fatal(err)
	}
}
