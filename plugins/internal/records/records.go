// Package records is what the record codecs (plugins/csv,
// plugins/fixedwidth) share: typed field values written as JSON, text
// encodings, and the configuration's common keys. It only turns text into
// JSON; it knows nothing of files or transports.
package records

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/openfsb/fsb/sdk/guest"
	"github.com/openfsb/fsb/sdk/jsonx"
	"github.com/valyala/fastjson"
)

// Kind is the JSON type a field becomes.
type Kind uint8

// Kinds.
const (
	String Kind = iota
	Integer
	Number
	Boolean
)

// ParseKind reads a field's "type" ("" is string).
func ParseKind(s string) (Kind, error) {
	switch s {
	case "", "string":
		return String, nil
	case "integer":
		return Integer, nil
	case "number":
		return Number, nil
	case "boolean":
		return Boolean, nil
	}
	return 0, fmt.Errorf("type %q: want string, integer, number or boolean", s)
}

// DefaultMaxRecords bounds the records of one file unless configured.
const DefaultMaxRecords = 1_000_000

// ErrEmpty: a typed value is empty (the field is left out).
var ErrEmpty = errors.New("empty")

// AppendValue appends text as a JSON value of kind k. decimals > 0 places
// an implied decimal point that many digits from the right of an integer
// text (fixed-width "000012345" with 2 decimals is 123.45); decimalComma
// reads "," as the decimal separator. An empty text of a kind other than
// string gives ErrEmpty; a malformed one an error naming what was wanted.
// Numbers are copied digit for digit (no float rounding): leading zeros
// and a "+" are dropped, ".5" becomes 0.5.
func AppendValue(dst []byte, k Kind, text string, decimals int, decimalComma bool) ([]byte, error) {
	if k == String {
		return jsonx.AppendString(dst, text), nil
	}
	t := strings.TrimSpace(text)
	if t == "" {
		return dst, ErrEmpty
	}
	switch k {
	case Boolean:
		switch strings.ToLower(t) {
		case "true", "1", "y", "yes", "j", "ja", "o", "oui":
			return append(dst, "true"...), nil
		case "false", "0", "n", "no", "nee", "non":
			return append(dst, "false"...), nil
		}
		return dst, fmt.Errorf("%q is not a boolean", text)
	case Integer:
		if decimals > 0 {
			return dst, errors.New("decimals apply to numbers")
		}
		neg, digits, ok := splitSign(t)
		if !ok || !allDigits(digits) {
			return dst, fmt.Errorf("%q is not an integer", text)
		}
		return appendInt(dst, neg, digits), nil
	}
	// Number.
	if decimalComma {
		t = strings.Replace(t, ",", ".", 1)
	}
	neg, body, ok := splitSign(t)
	if !ok {
		return dst, fmt.Errorf("%q is not a number", text)
	}
	if decimals > 0 {
		if !allDigits(body) {
			return dst, fmt.Errorf("%q is not a number with %d implied decimals", text, decimals)
		}
		for len(body) <= decimals {
			body = "0" + body
		}
		body = body[:len(body)-decimals] + "." + body[len(body)-decimals:]
	}
	mant, exp, _ := strings.Cut(strings.ToLower(body), "e")
	intPart, frac, hasDot := strings.Cut(mant, ".")
	if (intPart == "" && frac == "") || !allDigits(intPart) || !allDigits(frac) || (hasDot && frac == "" && intPart == "") {
		return dst, fmt.Errorf("%q is not a number", text)
	}
	if strings.Contains(strings.ToLower(body), "e") {
		eneg, edigits, ok := splitSign(exp)
		if !ok || edigits == "" || !allDigits(edigits) {
			return dst, fmt.Errorf("%q is not a number", text)
		}
		exp = "e"
		if eneg {
			exp += "-"
		}
		exp += edigits
	}
	if intPart == "" {
		intPart = "0"
	}
	if neg && !allZero(intPart+frac) {
		dst = append(dst, '-')
	}
	dst = appendInt(dst, false, intPart)
	if frac != "" {
		dst = append(dst, '.')
		dst = append(dst, frac...)
	}
	return append(dst, exp...), nil
}

func splitSign(s string) (neg bool, rest string, ok bool) {
	switch {
	case strings.HasPrefix(s, "-"):
		return true, s[1:], len(s) > 1
	case strings.HasPrefix(s, "+"):
		return false, s[1:], len(s) > 1
	}
	return false, s, s != ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}

// appendInt appends digits without leading zeros ("0" for none), signed.
func appendInt(dst []byte, neg bool, digits string) []byte {
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return append(dst, '0')
	}
	if neg {
		dst = append(dst, '-')
	}
	return append(dst, digits...)
}

// Decode returns in as UTF-8 text: "utf-8" (the default; a byte order mark
// is dropped, invalid bytes are an error naming the offset) or "latin1"
// (ISO-8859-1, each byte one character).
func Decode(in []byte, encoding string) (string, error) {
	switch strings.ToLower(encoding) {
	case "", "utf-8", "utf8":
		in = trimBOM(in)
		if !utf8.Valid(in) {
			off := 0
			for off < len(in) {
				r, n := utf8.DecodeRune(in[off:])
				if r == utf8.RuneError && n <= 1 {
					break
				}
				off += n
			}
			return "", fmt.Errorf("invalid UTF-8 at byte %d (set encoding: latin1 for ISO-8859-1 files)", off)
		}
		return string(in), nil
	case "latin1", "iso-8859-1":
		ascii := true
		for _, b := range in {
			if b >= 0x80 {
				ascii = false
				break
			}
		}
		if ascii {
			return string(in), nil
		}
		out := make([]rune, len(in))
		for i, b := range in {
			out[i] = rune(b)
		}
		return string(out), nil
	}
	return "", fmt.Errorf("encoding %q: want utf-8 or latin1", encoding)
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return b[3:]
	}
	return b
}

// Object reads a configuration document (an object; empty means {}).
func Object(raw []byte) (*fastjson.Object, error) {
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	var p fastjson.Parser
	v, err := p.ParseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	o, err := v.Object()
	if err != nil {
		return nil, errors.New("configuration: not an object")
	}
	return o, nil
}

// Keys checks that o holds only the allowed keys: a misspelt option is an
// error, not a silent default.
func Keys(where string, o *fastjson.Object, allowed ...string) error {
	var err error
	o.Visit(func(k []byte, _ *fastjson.Value) {
		for _, a := range allowed {
			if string(k) == a {
				return
			}
		}
		if err == nil {
			err = fmt.Errorf("%s: unknown key %q (known: %s)", where, k, strings.Join(allowed, ", "))
		}
	})
	return err
}

// Str reads an optional string.
func Str(o *fastjson.Object, key string) (string, error) {
	v := o.Get(key)
	if v == nil {
		return "", nil
	}
	b, err := v.StringBytes()
	if err != nil {
		return "", fmt.Errorf("%s: want a string", key)
	}
	return string(b), nil
}

// Bool reads an optional boolean.
func Bool(o *fastjson.Object, key string) (bool, error) {
	v := o.Get(key)
	if v == nil {
		return false, nil
	}
	b, err := v.Bool()
	if err != nil {
		return false, fmt.Errorf("%s: want true or false", key)
	}
	return b, nil
}

// Int reads an optional non-negative integer.
func Int(o *fastjson.Object, key string) (int, error) {
	v := o.Get(key)
	if v == nil {
		return 0, nil
	}
	n, err := v.Int()
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: want a non-negative integer", key)
	}
	return n, nil
}

// Codec is a decoder configured by JSON, served both as a guest's decode
// handler and natively (the file connector's Codec interface). It keeps
// the last configurations parsed: a source decodes with the same one every
// time.
type Codec[O interface{ Decode([]byte) ([]byte, error) }] struct {
	name  string
	parse func([]byte) (O, error)
	mu    sync.Mutex
	m     map[string]O
}

// NewCodec returns a Codec named name (for errors) parsing its
// configuration with parse.
func NewCodec[O interface{ Decode([]byte) ([]byte, error) }](name string, parse func([]byte) (O, error)) *Codec[O] {
	return &Codec[O]{name: name, parse: parse}
}

// Handler is the guest's decode handler.
func (c *Codec[O]) Handler(in []byte, cfg guest.Config) ([]byte, error) {
	raw := cfg.Raw()
	if raw == nil {
		return nil, fmt.Errorf("%s: %w", c.name, cfg.Err())
	}
	return c.Decode(context.Background(), in, raw)
}

// Decode decodes in with the configuration cfg (JSON).
func (c *Codec[O]) Decode(_ context.Context, in, cfg []byte) ([]byte, error) {
	opt, err := c.options(cfg)
	if err != nil {
		return nil, err
	}
	return opt.Decode(in)
}

func (c *Codec[O]) options(raw []byte) (O, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[string(raw)]; ok {
		return v, nil
	}
	v, err := c.parse(raw)
	if err != nil {
		return v, err
	}
	if c.m == nil || len(c.m) >= 64 {
		c.m = make(map[string]O)
	}
	c.m[string(raw)] = v
	return v, nil
}

// AppendKey appends name as a JSON string (an object key).
func AppendKey(dst []byte, name string) []byte { return jsonx.AppendString(dst, name) }
