package access

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// Close and reopen keeps every record, the admin log and its numbering,
// and the hashed OAuth secret still authenticates.
func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	ca := newPKI(t, "CA")
	opts := testOptions(ca)
	r, err := Open(dir, opts)
	mustDo(t, err)
	f := &fixture{t: t, r: r, ca: ca, cert: ca.client(t, "persist.test")}
	f.onboard(testService, Quota{})
	mustDo(t, r.Suspend(ctx, admin, f.client.ID, "rotate"))
	mustDo(t, r.Resume(ctx, admin, f.client.ID, "rotated"))
	beforeOrgs, beforeApps, beforeCreds, beforeGrants := r.Organisations(), r.Applications(""), r.Credentials(""), r.Grants("")
	beforeLog, err := r.Log(ctx, LogQuery{})
	mustDo(t, err)
	mustDo(t, r.Close())
	if _, err := r.RegisterOrganisation(ctx, admin, "0417497106", "after close"); err == nil {
		t.Fatal("admin action after Close succeeded")
	}

	r2, err := Open(dir, opts)
	mustDo(t, err)
	defer r2.Close()
	f.r = r2
	for name, pair := range map[string][2]any{
		"organisations": {beforeOrgs, r2.Organisations()},
		"applications":  {beforeApps, r2.Applications("")},
		"credentials":   {beforeCreds, r2.Credentials("")},
		"grants":        {beforeGrants, r2.Grants("")},
	} {
		a, _ := json.Marshal(pair[0])
		b, _ := json.Marshal(pair[1])
		if string(a) != string(b) {
			t.Errorf("%s changed on reopen:\n%s\n%s", name, a, b)
		}
	}
	afterLog, err := r2.Log(ctx, LogQuery{})
	mustDo(t, err)
	if !reflect.DeepEqual(beforeLog, afterLog) {
		t.Errorf("log changed on reopen")
	}
	// Numbering carries on.
	_, err = r2.RegisterOrganisation(ctx, admin, "0417497106", "Second")
	mustDo(t, err)
	last, _ := r2.Log(ctx, LogQuery{After: uint64(len(beforeLog))})
	if len(last) != 1 || last[0].Seq != uint64(len(beforeLog))+1 {
		t.Fatalf("log after reopen: %+v", last)
	}
	// Decide and the token endpoint work from the reopened store.
	if d := r2.Decide(ctx, f.call()); !d.Allowed {
		t.Fatalf("certificate call refused after reopen: %s", d.Reason)
	}
	c := f.call()
	c.PeerCertificates, c.BearerToken = nil, f.token(nil)
	if d := r2.Decide(ctx, c); !d.Allowed {
		t.Fatalf("token call refused after reopen: %s", d.Reason)
	}
	// The secret itself is nowhere on disk.
	r2.Close()
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			b, _ := os.ReadFile(p)
			if len(f.secret) > 0 && bytes.Contains(b, []byte(f.secret)) {
				t.Errorf("%s holds the client secret", p)
			}
		}
		return nil
	})
}

// A record written by a newer version is refused, not half-read.
func TestNewerRecordRefused(t *testing.T) {
	dir := t.TempDir()
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil))
	mustDo(t, err)
	mustDo(t, db.Update(func(txn *badger.Txn) error {
		return txn.Set([]byte(keyOrg+"0203201340"), []byte(`{"v":99,"enterpriseNumber":"0203201340"}`))
	}))
	mustDo(t, db.Close())
	_, err = Open(dir, Options{})
	if !errors.Is(err, errNewer) {
		t.Fatalf("newer record: %v", err)
	}
}
