package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/valyala/fastjson"

	"github.com/openfsb/fsb/sdk/jsonx"
)

var parsers fastjson.ParserPool

// decodeJSON turns raw JSON into the JSON data model (map[string]any,
// []any, string, float64, bool, nil). An empty body is nil.
func decodeJSON(b []byte) (any, error) {
	if len(b) == 0 {
		return nil, nil
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, err
	}
	return fromFast(v, "", nil), nil
}

// decodeStrictJSON is decodeJSON for consumer input: it also reports, by
// JSON pointer, every repeated object key (which value wins must not be left
// to chance) and every number too large for a float64.
func decodeStrictJSON(b []byte) (any, []inputError, error) {
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, nil, err
	}
	bad := []inputError{}
	return fromFast(v, "", &bad), bad, nil
}

// inputError is a value that JSON allows but consumer input must not have.
type inputError struct{ pointer, detail string }

// fromFast converts a parsed value; when bad is not nil, input errors are
// collected there, each with its JSON pointer.
func fromFast(v *fastjson.Value, ptr string, bad *[]inputError) any {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		m := make(map[string]any, o.Len())
		o.Visit(func(k []byte, x *fastjson.Value) {
			key := string(k)
			var sub string
			if bad != nil {
				sub = ptr + "/" + strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
				if _, seen := m[key]; seen {
					*bad = append(*bad, inputError{pointer: sub, detail: "the property is given more than once"})
				}
			}
			m[key] = fromFast(x, sub, bad)
		})
		return m
	case fastjson.TypeArray:
		a, _ := v.Array()
		out := make([]any, len(a))
		for i, x := range a {
			sub := ptr
			if bad != nil {
				sub = ptr + "/" + strconv.Itoa(i)
			}
			out[i] = fromFast(x, sub, bad)
		}
		return out
	case fastjson.TypeString:
		return string(v.GetStringBytes())
	case fastjson.TypeNumber:
		// strconv rounds correctly; fastjson's own float parser is off by an
		// ulp for some large exponents (3e+100 became 3.0000000000000002e+100)
		var scratch [32]byte
		f, err := strconv.ParseFloat(string(v.MarshalTo(scratch[:0])), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			f = v.GetFloat64()
		}
		if bad != nil && (math.IsInf(f, 0) || math.IsNaN(f)) {
			*bad = append(*bad, inputError{pointer: ptr, detail: "the number is out of range"})
		}
		return f
	case fastjson.TypeTrue:
		return true
	case fastjson.TypeFalse:
		return false
	}
	return nil
}

// framed is the check a body copied raw gets: one JSON value that is not
// cut short — brackets and braces balanced and matched, strings closed, and
// nothing after the value. Fully validating every forwarded byte cost ~15%
// of a passthrough; this one allocation-free pass refuses HTML error pages,
// truncated and concatenated answers. Expressions that read into a body
// parse it completely.
func framed(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return errNotFramed
	}
	if b[0] != '{' && b[0] != '[' {
		return fastjson.ValidateBytes(b) // a scalar: short, check it whole
	}
	var stack [64]byte // open brackets; deeper documents are validated fully
	depth := 0
	for i := 0; i < len(b); i++ {
		switch c := b[i]; c {
		case '"': // jump to the closing quote: the next one not escaped
			j := i + 1
			for {
				k := bytes.IndexByte(b[j:], '"')
				if k < 0 {
					return errNotFramed
				}
				j += k
				backslashes := 0
				for p := j - 1; p > i && b[p] == '\\'; p-- {
					backslashes++
				}
				if backslashes%2 == 0 {
					break
				}
				j++
			}
			i = j
		case '{', '[':
			if depth == len(stack) {
				return fastjson.ValidateBytes(b)
			}
			stack[depth] = c
			depth++
		case '}', ']':
			if depth == 0 || stack[depth-1] != c-2 { // '{'+2 == '}', '['+2 == ']'
				return errNotFramed
			}
			depth--
			if depth == 0 && i != len(b)-1 {
				return errNotFramed // something after the value
			}
		}
	}
	if depth != 0 {
		return errNotFramed
	}
	return nil
}

var errNotFramed = errors.New("the body is not one JSON object or array")

// rawAt appends the JSON at path inside raw; absent reports a missing or
// null value (left out of the output).
func rawAt(dst, raw []byte, path []string) (out []byte, absent bool, err error) {
	if len(path) == 0 { // framed already when the call kept it
		if string(bytes.TrimSpace(raw)) == "null" {
			return dst, true, nil
		}
		return append(dst, raw...), false, nil
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(raw)
	if err != nil {
		return dst, false, err
	}
	v = v.Get(path...)
	if v == nil || v.Type() == fastjson.TypeNull {
		return dst, true, nil
	}
	return jsonx.AppendValue(dst, v), false, nil
}

var keyBufs = sync.Pool{New: func() any { s := make([]string, 0, 16); return &s }}

// appendJSON encodes v; maps are written with sorted keys so that output is
// deterministic. Types outside the JSON data model go through encoding/json.
func appendJSON(dst []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		return append(dst, "null"...), nil
	case string:
		return appendString(dst, x), nil
	case bool:
		return strconv.AppendBool(dst, x), nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return dst, fmt.Errorf("cannot encode %v as JSON", x)
		}
		if x == math.Trunc(x) && math.Abs(x) < 1e15 && (x != 0 || !math.Signbit(x)) { // -0 keeps its sign
			return strconv.AppendInt(dst, int64(x), 10), nil
		}
		return strconv.AppendFloat(dst, x, 'g', -1, 64), nil
	case int:
		return strconv.AppendInt(dst, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(dst, x, 10), nil
	case map[string]any:
		kp := keyBufs.Get().(*[]string)
		keys := (*kp)[:0]
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		dst = append(dst, '{')
		var err error
		for i, k := range keys {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, k)
			dst = append(dst, ':')
			if dst, err = appendJSON(dst, x[k]); err != nil {
				break
			}
		}
		*kp = keys[:0]
		keyBufs.Put(kp)
		return append(dst, '}'), err
	case []any:
		dst = append(dst, '[')
		for i, e := range x {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = appendJSON(dst, e); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

func appendString(dst []byte, s string) []byte { return jsonx.AppendString(dst, s) }
