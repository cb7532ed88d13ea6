package access

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
)

// records is every registry record by id. A published records value is
// never changed: an admin action copies the maps it touches and replaces
// whole records (copy on write), so Decide reads without locks.
type records struct {
	orgs   map[string]*Organisation
	apps   map[string]*Application
	creds  map[string]*Credential
	grants map[string]*Grant
}

func newRecords() *records {
	return &records{
		orgs:   map[string]*Organisation{},
		apps:   map[string]*Application{},
		creds:  map[string]*Credential{},
		grants: map[string]*Grant{},
	}
}

// snapshot is the read model Decide uses: the records plus indexes built
// from them. It is rebuilt after every admin action and swapped in
// atomically, which is how a suspension or revocation reaches the very next
// call without any cache to invalidate.
type snapshot struct {
	*records
	byFingerprint map[[32]byte]*credEntry
	byClient      map[string]*credEntry
	grantsFor     map[grantKey][]grantEntry
}

// credEntry is a credential with its application and organisation, and
// whether all three are free of holds.
type credEntry struct {
	cred   *Credential
	app    *Application
	org    *Organisation
	usable bool
}

type grantKey struct {
	app   string
	name  string
	major int
}

// grantEntry pairs a grant with its quota counter, which outlives
// snapshots so that a quota change or a rebuild does not reset the count.
type grantEntry struct {
	g     *Grant
	quota *quotaCounter
}

// index builds a snapshot. counter returns the quota counter of a grant.
func index(rs *records, counter func(id string) *quotaCounter) *snapshot {
	s := &snapshot{
		records:       rs,
		byFingerprint: map[[32]byte]*credEntry{},
		byClient:      map[string]*credEntry{},
		grantsFor:     map[grantKey][]grantEntry{},
	}
	for _, c := range rs.creds {
		app := rs.apps[c.Application]
		if app == nil {
			continue
		}
		org := rs.orgs[app.Organisation]
		if org == nil {
			continue
		}
		e := &credEntry{cred: c, app: app, org: org, usable: c.Hold == NoHold && app.Hold == NoHold && org.Hold == NoHold}
		switch c.Kind {
		case Certificate:
			var fp [32]byte
			if n, err := hex.Decode(fp[:], []byte(c.Fingerprint)); err == nil && n == 32 {
				// Two records for one certificate cannot be created; if a
				// revoked one and a live one ever coexist, the live one wins.
				if old := s.byFingerprint[fp]; old == nil || !old.usable {
					s.byFingerprint[fp] = e
				}
			}
		case OAuthClient:
			s.byClient[c.ID] = e
		}
	}
	ids := slices.Sorted(maps.Keys(rs.grants))
	for _, id := range ids {
		g := rs.grants[id]
		app := rs.apps[g.Application]
		if app == nil || app.Hold != NoHold {
			continue
		}
		if org := rs.orgs[app.Organisation]; org == nil || org.Hold != NoHold {
			continue
		}
		if g.Hold != NoHold || (g.State != GrantActive && g.State != GrantIPsRegistered) {
			continue
		}
		k := grantKey{app: g.Application, name: g.Service.Name, major: g.Service.Major}
		s.grantsFor[k] = append(s.grantsFor[k], grantEntry{g: g, quota: counter(g.ID)})
	}
	return s
}

// fingerprint is the SHA-256 of a certificate's DER encoding.
func fingerprint(der []byte) [32]byte { return sha256.Sum256(der) }
