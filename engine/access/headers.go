package access

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/openfsb/fsb/engine/expr"
)

// The request headers in which a consumer states why it calls. Belgif
// defines none for this, so they are OpenFSB's own and do not squat the
// BelGov- prefix. Both are required on every consumer call.
const (
	// HeaderPurpose carries the purpose code the call serves; it must be one
	// of the purposes of the caller's grant for the service.
	HeaderPurpose = "OpenFSB-Purpose"
	// HeaderEndUser carries an opaque reference to the official or process
	// at the consumer that caused the call (the consumer's own log id for
	// them). Never a national register number: Belgif forbids sensitive
	// identifiers in headers, so a value that is a valid SSIN is refused.
	HeaderEndUser = "OpenFSB-End-User"
)

// Limits on the stated purpose and end-user reference.
const (
	maxPurpose = 100
	maxEndUser = 128
)

// checkPurpose accepts 1–100 characters of letters, digits and . _ : / -.
func checkPurpose(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > maxPurpose {
		return fmt.Sprintf("is longer than %d characters", maxPurpose)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("._:/-", c) >= 0) {
			return "may only hold letters, digits and . _ : / -"
		}
	}
	return ""
}

// checkEndUser accepts 1–128 printable ASCII characters that are not an SSIN.
func checkEndUser(s string) string {
	if s == "" {
		return "is required"
	}
	if len(s) > maxEndUser {
		return fmt.Sprintf("is longer than %d characters", maxEndUser)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return "may only hold printable ASCII characters"
		}
	}
	if mayBeSSIN(s) && expr.ValidSSIN(s) {
		return "must not be a national register number: use an opaque reference"
	}
	return ""
}

// mayBeSSIN is a cheap pre-check: an SSIN is written with digits, dots,
// dashes and spaces only.
func mayBeSSIN(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c == '.' || c == '-' || c == ' ') {
			return false
		}
	}
	return true
}

// ParseBearer returns the token of an Authorization header value of the
// Bearer scheme (RFC 6750: the scheme is case-insensitive, the token is
// token68). It reports false for any other value, an empty one included.
func ParseBearer(authorization string) (string, bool) {
	const scheme = "bearer "
	if len(authorization) <= len(scheme) || !strings.EqualFold(authorization[:len(scheme)], scheme) {
		return "", false
	}
	tok := strings.TrimLeft(authorization[len(scheme):], " ")
	if tok == "" || len(tok) > maxTokenLen {
		return "", false
	}
	end := len(tok)
	for end > 0 && tok[end-1] == '=' {
		end--
	}
	if end == 0 {
		return "", false
	}
	for i := 0; i < end; i++ {
		c := tok[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return "", false
		}
	}
	return tok, true
}

// maxTokenLen bounds accepted bearer tokens; ours are well under 1 KiB.
const maxTokenLen = 4096

// maxAllowlist bounds the entries of one application's allowlist.
const maxAllowlist = 256

// ParseAllowlist parses an IP allowlist written as addresses or CIDR
// prefixes separated by commas, white space or newlines ("192.0.2.0/24,
// 2001:db8::1"). A bare address is a /32 or /128. A prefix with host bits
// set (192.0.2.1/24) is refused rather than silently widened or narrowed,
// and IPv4-mapped IPv6 forms are unmapped. Duplicates are removed and the
// order kept.
func ParseAllowlist(s string) ([]netip.Prefix, error) {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r' })
	out := make([]netip.Prefix, 0, len(fields))
	for _, f := range fields {
		p, err := parsePrefix(f)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return normaliseAllowlist(out)
}

func parsePrefix(f string) (netip.Prefix, error) {
	if !strings.Contains(f, "/") {
		a, err := netip.ParseAddr(f)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("allowlist: %q is not an IP address or CIDR prefix: %w", f, ErrInvalid)
		}
		a = a.Unmap()
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(f)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("allowlist: %q is not an IP address or CIDR prefix: %w", f, ErrInvalid)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("allowlist: %q has host bits set (did you mean %s?): %w", f, p.Masked(), ErrInvalid)
	}
	return unmapPrefix(p), nil
}

// unmapPrefix turns ::ffff:192.0.2.0/120 into 192.0.2.0/24.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if !a.Is4In6() {
		return p
	}
	bits := p.Bits() - 96
	if bits < 0 {
		bits = 0
	}
	return netip.PrefixFrom(a.Unmap(), bits).Masked()
}

// normaliseAllowlist checks prefixes given as values (by the admin API) the
// way ParseAllowlist checks text: valid, masked, unmapped, no duplicates.
func normaliseAllowlist(in []netip.Prefix) ([]netip.Prefix, error) {
	if len(in) > maxAllowlist {
		return nil, fmt.Errorf("allowlist: %d entries, at most %d: %w", len(in), maxAllowlist, ErrInvalid)
	}
	out := make([]netip.Prefix, 0, len(in))
	seen := make(map[netip.Prefix]bool, len(in))
	for _, p := range in {
		if !p.IsValid() {
			return nil, fmt.Errorf("allowlist: an invalid prefix: %w", ErrInvalid)
		}
		if p.Masked() != p {
			return nil, fmt.Errorf("allowlist: %s has host bits set (did you mean %s?): %w", p, p.Masked(), ErrInvalid)
		}
		p = unmapPrefix(p)
		if p.Bits() == 0 {
			return nil, fmt.Errorf("allowlist: %s admits every address; list the consumer's own ranges: %w", p, ErrInvalid)
		}
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out, nil
}

// allowed reports whether addr is inside one of the prefixes.
func allowed(list []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range list {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
