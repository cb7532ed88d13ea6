package jsonx

import (
	"fmt"
	"unsafe"

	"github.com/valyala/fastjson"
)

// Valid reports whether data is one valid JSON value (RFC 8259), with
// surrounding white space allowed and nesting at most fastjson.MaxDepth
// deep. Invalid UTF-8 inside strings is accepted, as encoding/json does.
func Valid(data []byte) bool { return validate(data) == nil }

// Validate is Valid with the reason: nil, or a *SyntaxError.
func Validate(data []byte) error { return validate(data) }

// SyntaxError reports invalid JSON.
type SyntaxError struct {
	Offset int // byte offset of the problem
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("jsonx: invalid JSON at offset %d: %s", e.Offset, e.Msg)
}

// validate checks data strictly. fastjson.Validate is not used: it misses a
// control character that comes before an escape in a string (v1.6.10).
func validate(data []byte) error {
	i := skipSpace(data, 0)
	i, err := validValue(data, i, 1)
	if err != nil {
		return err
	}
	if i = skipSpace(data, i); i != len(data) {
		return &SyntaxError{i, "data after the value"}
	}
	return nil
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

func validValue(b []byte, i, depth int) (int, error) {
	if i >= len(b) {
		return i, &SyntaxError{i, "unexpected end of data"}
	}
	if depth > fastjson.MaxDepth {
		return i, &SyntaxError{i, fmt.Sprintf("nested deeper than %d", fastjson.MaxDepth)}
	}
	switch c := b[i]; c {
	case '{':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == '}' {
			return i + 1, nil
		}
		for {
			if i >= len(b) || b[i] != '"' {
				return i, &SyntaxError{i, "expected a string key"}
			}
			var err error
			if i, err = validString(b, i+1); err != nil {
				return i, err
			}
			if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
				return i, &SyntaxError{i, "expected ':' after a key"}
			}
			if i, err = validValue(b, skipSpace(b, i+1), depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == '}' {
				return i + 1, nil
			}
			return i, &SyntaxError{i, "expected ',' or '}' in an object"}
		}
	case '[':
		i = skipSpace(b, i+1)
		if i < len(b) && b[i] == ']' {
			return i + 1, nil
		}
		for {
			var err error
			if i, err = validValue(b, i, depth+1); err != nil {
				return i, err
			}
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
				continue
			}
			if i < len(b) && b[i] == ']' {
				return i + 1, nil
			}
			return i, &SyntaxError{i, "expected ',' or ']' in an array"}
		}
	case '"':
		return validString(b, i+1)
	case 't':
		return validLiteral(b, i, "true")
	case 'f':
		return validLiteral(b, i, "false")
	case 'n':
		return validLiteral(b, i, "null")
	default:
		if c == '-' || c >= '0' && c <= '9' {
			return validNum(b, i)
		}
		return i, &SyntaxError{i, fmt.Sprintf("unexpected character %q", c)}
	}
}

func validLiteral(b []byte, i int, lit string) (int, error) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return i, &SyntaxError{i, "expected " + lit}
	}
	return i + len(lit), nil
}

// validString checks the string whose opening quote is before b[i] and
// returns the offset after its closing quote.
func validString(b []byte, i int) (int, error) {
	for {
		// Skip eight bytes at a time while none is < 0x20, '"' or '\\'.
		for i+8 <= len(b) {
			x := *(*uint64)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), i))
			if (hasLess(x, 0x20)|hasLess(x^(lsb*'"'), 1)|hasLess(x^(lsb*'\\'), 1))&msb != 0 {
				break
			}
			i += 8
		}
		if i >= len(b) {
			return i, &SyntaxError{i, "unterminated string"}
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, nil
		case c == '\\':
			if i+1 >= len(b) {
				return i, &SyntaxError{i, "unterminated string"}
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if len(b)-i < 6 || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					return i, &SyntaxError{i, `invalid \u escape`}
				}
				i += 6
			default:
				return i, &SyntaxError{i, fmt.Sprintf("invalid escape %q", b[i:i+2])}
			}
		case c < 0x20:
			return i, &SyntaxError{i, fmt.Sprintf("control character %#02x in a string", c)}
		default:
			i++
		}
	}
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

func validNum(b []byte, i int) (int, error) {
	start := i
	if b[i] == '-' {
		i++
	}
	digits := func() int {
		n := 0
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case digits() == 0:
		return start, &SyntaxError{start, "invalid number"}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return start, &SyntaxError{start, "invalid number"}
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if digits() == 0 {
			return start, &SyntaxError{start, "invalid number"}
		}
	}
	return i, nil
}
