package rest

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// pathPart is a literal piece of an operation path or, when param is set, a
// {placeholder} filled at call time.
type pathPart struct {
	literal string
	param   string
}

// compilePath splits "/persons/{ssin}/links" into literal and placeholder
// parts once, so Call only appends.
func compilePath(path string) ([]pathPart, error) {
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("path %q does not start with /", path)
	}
	var parts []pathPart
	rest := path
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		lit := rest
		if open >= 0 {
			lit = rest[:open]
		}
		if err := checkLiteral(lit); err != nil {
			return nil, fmt.Errorf("path %q: %w", path, err)
		}
		if lit != "" {
			parts = append(parts, pathPart{literal: lit})
		}
		if open < 0 {
			break
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("path %q: unclosed {", path)
		}
		name := rest[open+1 : open+end]
		if !validParamName(name) {
			return nil, fmt.Errorf("path %q: placeholder {%s} must be a non-empty name of letters, digits, _ . or -", path, name)
		}
		parts = append(parts, pathPart{param: name})
		rest = rest[open+end+1:]
	}
	return parts, nil
}

func checkLiteral(s string) error {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '}':
			return errors.New("} without {")
		case c == '?' || c == '#':
			return fmt.Errorf("%q belongs in the query, not the path", c)
		case c <= ' ' || c >= 0x7f:
			return errors.New("literal part must be ascii without spaces: escape it")
		case c == '%':
			if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
				return errors.New("% not followed by two hex digits")
			}
		}
	}
	return nil
}

func validParamName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// paramError is why a path could not be filled; it names the placeholder,
// never the value (values may be personal data).
type paramError struct {
	name   string
	reason string
}

func (e *paramError) Error() string { return fmt.Sprintf("path parameter %q %s", e.name, e.reason) }

// appendPath fills the template. A value is one path segment: "/" and every
// other reserved byte are escaped. Empty values and the dot segments "." and
// ".." are refused: the first would address a different resource (often a
// collection), the others would let a value climb the upstream's path.
func appendPath(dst []byte, parts []pathPart, values map[string]string) ([]byte, error) {
	for _, p := range parts {
		if p.param == "" {
			dst = append(dst, p.literal...)
			continue
		}
		v, ok := values[p.param]
		switch {
		case !ok || v == "":
			return dst, &paramError{p.param, "has no value"}
		case v == "." || v == "..":
			return dst, &paramError{p.param, "is a dot segment"}
		}
		dst = appendEscaped(dst, v, false)
	}
	return dst, nil
}

const upperHex = "0123456789ABCDEF"

// appendEscaped percent-encodes everything but RFC 3986 unreserved bytes.
// In query mode a space becomes "+", as url.QueryEscape does, so the output
// matches url.Values.Encode.
func appendEscaped(dst []byte, s string, query bool) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
			dst = append(dst, c)
		case c == ' ' && query:
			dst = append(dst, '+')
		default:
			dst = append(dst, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return dst
}

// queryParam is one static query parameter.
type queryParam struct{ key, value string }

// compileQuery sorts the static parameters and encodes them once, for the
// common call that adds none.
func compileQuery(q map[string]string) ([]queryParam, string) {
	keys := slices.Sorted(maps.Keys(q))
	params := make([]queryParam, 0, len(keys))
	var enc []byte
	for i, k := range keys {
		params = append(params, queryParam{k, q[k]})
		enc = appendQueryParam(enc, i == 0, k, q[k])
	}
	return params, string(enc)
}

func appendQueryParam(dst []byte, first bool, k, v string) []byte {
	if !first {
		dst = append(dst, '&')
	}
	dst = appendEscaped(dst, k, true)
	dst = append(dst, '=')
	return appendEscaped(dst, v, true)
}

// appendQuery writes static parameters merged with the request's (the
// request wins), sorted by key so equal calls produce equal URLs (caches and
// logs upstream see one form).
func appendQuery(dst []byte, static []queryParam, staticEnc string, req map[string]string) []byte {
	if len(req) == 0 {
		if staticEnc == "" {
			return dst
		}
		return append(append(dst, '?'), staticEnc...)
	}
	var buf [16]string
	keys := buf[:0]
	for _, p := range static {
		if _, over := req[p.key]; !over {
			keys = append(keys, p.key)
		}
	}
	for k := range req {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '?')
	for i, k := range keys {
		v, ok := req[k]
		if !ok {
			j, _ := slices.BinarySearchFunc(static, k, func(p queryParam, k string) int { return strings.Compare(p.key, k) })
			v = static[j].value
		}
		dst = appendQueryParam(dst, i == 0, k, v)
	}
	return dst
}
