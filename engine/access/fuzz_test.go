package access

import (
	"net/netip"
	"strings"
	"testing"
)

// ParseAllowlist never panics, and what it accepts is canonical: masked,
// unmapped, not the whole address space, and parses back to itself.
func FuzzParseAllowlist(f *testing.F) {
	for _, s := range []string{"192.0.2.0/24", "2001:db8::/32, 192.0.2.7", "::ffff:192.0.2.0/120", "10.0.0.1/8", "0.0.0.0/0", "fe80::1%eth0", "", ",,", "1.2.3.4/33", "a b c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		list, err := ParseAllowlist(s)
		if err != nil {
			return
		}
		var text []string
		for _, p := range list {
			if !p.IsValid() || p.Masked() != p || p.Addr().Is4In6() || p.Bits() == 0 {
				t.Fatalf("%q gave non-canonical %v", s, p)
			}
			text = append(text, p.String())
		}
		again, err := ParseAllowlist(strings.Join(text, ","))
		if err != nil || len(again) != len(list) {
			t.Fatalf("%q: round trip %v, %v", s, again, err)
		}
		for _, p := range list {
			if !allowed(list, p.Addr()) {
				t.Fatalf("%v not inside its own allowlist", p)
			}
		}
	})
}

// ParseBearer never panics and returns only token68 characters.
func FuzzParseBearer(f *testing.F) {
	for _, s := range []string{"Bearer abc.def.ghi", "bearer  x==", "Basic dXNlcg==", "Bearer ", "Bearer a b", "BEARER ===", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, ok := ParseBearer(s)
		if !ok {
			if tok != "" {
				t.Fatal("token returned with false")
			}
			return
		}
		if tok == "" || strings.ContainsAny(tok, " \t\r\n,;\"") || !strings.HasSuffix(s, tok) {
			t.Fatalf("%q gave %q", s, tok)
		}
	})
}

// Whatever a caller puts in the bearer token, Decide does not panic and
// does not allow the call unless the token is one we issued.
func FuzzDecideToken(f *testing.F) {
	fx := newFixtureWith(f, func(o *Options) { o.FailureLimit = 1 << 30 })
	valid := fx.token(nil)
	f.Add(valid)
	f.Add(valid[:len(valid)-2])
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Add("a.b.c")
	f.Fuzz(func(t *testing.T, tok string) {
		c := fx.call()
		c.PeerCertificates, c.BearerToken = nil, tok
		c.ClientIP = netip.MustParseAddr("192.0.2.1")
		d := fx.r.Decide(ctx, c)
		if d.Allowed && tok != valid {
			t.Fatalf("forged token %q allowed", tok)
		}
	})
}
