package jsonx

import (
	"unicode/utf8"
	"unsafe"

	"github.com/valyala/fastjson"
)

// AppendValue appends v as JSON to dst. Unlike fastjson's MarshalTo it always
// writes valid JSON (RFC 8259, UTF-8): strings are escaped as JSON requires,
// an invalid UTF-8 byte becomes U+FFFD (as encoding/json does), and a number
// that is not a JSON number (NaN or an infinity built with the Arena, say)
// becomes null. A nil v is null.
func AppendValue(dst []byte, v *fastjson.Value) []byte {
	if v == nil {
		return append(dst, "null"...)
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		dst = append(dst, '{')
		first := true
		o.Visit(func(k []byte, c *fastjson.Value) {
			if !first {
				dst = append(dst, ',')
			}
			first = false
			dst = append(dst, '"')
			dst = appendEscaped(dst, b2s(k), true)
			dst = append(dst, '"', ':')
			dst = AppendValue(dst, c)
		})
		return append(dst, '}')
	case fastjson.TypeArray:
		a, _ := v.Array()
		dst = append(dst, '[')
		for i, c := range a {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = AppendValue(dst, c)
		}
		return append(dst, ']')
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		dst = append(dst, '"')
		dst = appendEscaped(dst, b2s(b), true)
		return append(dst, '"')
	case fastjson.TypeNumber:
		n := len(dst)
		dst = v.MarshalTo(dst)
		if !validNumber(dst[n:]) {
			dst = append(dst[:n], "null"...)
		}
		return dst
	case fastjson.TypeTrue:
		return append(dst, "true"...)
	case fastjson.TypeFalse:
		return append(dst, "false"...)
	default:
		return append(dst, "null"...)
	}
}

// b2s views b as a string without copying; the string must not outlive the
// call it is passed to.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

const hex = "0123456789abcdef"

// safe[c] is true for the ASCII bytes written as they are inside a string.
var safe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// AppendString appends s as a JSON string; each invalid UTF-8 byte is
// written as \ufffd.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendEscaped(dst, s, true)
	return append(dst, '"')
}

// appendEscaped appends the JSON escaping of s, without quotes. With
// fixUTF8, each invalid UTF-8 byte is written as \ufffd; without it, kept.
func appendEscaped(dst []byte, s string, fixUTF8 bool) []byte {
	start := 0
	for i := 0; i < len(s); {
		// Skip plain ASCII eight bytes at a time: a word needs a closer look
		// if a byte is < 0x20, '"', '\\' or >= 0x80.
		for i+8 <= len(s) {
			x := *(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.StringData(s)), i))
			if (hasLess(x, 0x20)|hasLess(x^(lsb*'"'), 1)|hasLess(x^(lsb*'\\'), 1)|x)&msb != 0 {
				break
			}
			i += 8
		}
		if i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			if safe[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		if !fixUTF8 {
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	return append(dst, s[start:]...)
}

const (
	lsb = 0x0101010101010101
	msb = 0x8080808080808080
)

// hasLess sets the high bit of some byte of the result if, and only if, a
// byte of x is less than n (n <= 128; bit-twiddling hacks).
func hasLess(x, n uint64) uint64 { return (x - lsb*n) &^ x }

// validNumber reports whether b is a JSON number.
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i == len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i == len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}
