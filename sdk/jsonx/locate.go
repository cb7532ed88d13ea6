package jsonx

import (
	"fmt"
	"slices"

	"github.com/valyala/fastjson"
)

// Kind is the type of a JSON value.
type Kind uint8

// The kinds of JSON values.
const (
	KindNull Kind = iota
	KindFalse
	KindTrue
	KindNumber
	KindString
	KindArray
	KindObject
)

// Span is where a value lies in a document: data[Start:End] is its JSON
// text (a string's with its quotes).
type Span struct {
	Start, End int
	Kind       Kind
}

// Locate checks data as Validate does and returns where the values that the
// paths select lie, in document order, each value once however many paths
// select it. It reads the document once and builds nothing, so a plugin that
// rewrites a few values can copy the rest of its input as it is, instead of
// parsing the whole document into a tree and writing it out again. Every
// member of an object counts: a key that occurs twice is selected twice.
//
// In a guest (GOOS=wasip1) the host runs it, natively, through the
// fsb.json_locate host function (sdk/ABI.md); the result is the same.
func Locate(data []byte, paths ...Path) ([]Span, error) {
	return NewLocator(paths...).Locate(data)
}

// A Locator is Locate for a fixed list of paths, reusing its buffers from
// call to call: a plugin keeps one per configuration. The spans a call
// returns are valid until the next call. Not safe for concurrent use.
type Locator struct {
	paths []Path
	list  []byte // the paths as fsb.json_locate takes them
	spans []Span
	buf   []uint32 // a guest's buffer for the host's answer
}

// NewLocator returns a Locator for paths.
func NewLocator(paths ...Path) *Locator {
	return &Locator{paths: paths, list: AppendPaths(nil, paths)}
}

// Locate is Locate with the Locator's paths.
func (l *Locator) Locate(data []byte) ([]Span, error) {
	var err error
	l.spans, err = l.locate(data, l.spans[:0])
	return l.spans, err
}

// locateNative is Locate in Go; a guest's host runs it for the guest.
func locateNative(data []byte, paths []Path, dst []Span) ([]Span, error) {
	l := locator{b: data, paths: paths, spans: dst}
	return l.run()
}

// locator walks a document once, carrying the paths still alive: those
// whose first depth steps match the way down to the current value.
type locator struct {
	b      []byte
	paths  []Path
	spans  []Span
	levels [][]int // reusable lists of alive path indexes, by depth
}

func (l *locator) run() ([]Span, error) {
	alive := make([]int, 0, len(l.paths))
	for i := range l.paths {
		alive = append(alive, i)
	}
	i, err := l.value(skipSpace(l.b, 0), 1, 0, alive)
	if err != nil {
		return l.spans, err
	}
	if i = skipSpace(l.b, i); i != len(l.b) {
		return l.spans, &SyntaxError{i, "data after the value"}
	}
	// A container is recorded after what it contains: put it back in order.
	if !slices.IsSortedFunc(l.spans, bySpanStart) {
		slices.SortStableFunc(l.spans, bySpanStart)
	}
	return l.spans, nil
}

func bySpanStart(a, b Span) int { return a.Start - b.Start }

// value reads the value at b[i] (depth as in validValue; step is how many
// path steps lie above it) and records it if an alive path ends there.
func (l *locator) value(i, depth, step int, alive []int) (int, error) {
	if len(alive) == 0 {
		return validValue(l.b, i, depth)
	}
	if i >= len(l.b) {
		return i, &SyntaxError{i, "unexpected end of data"}
	}
	if depth > fastjson.MaxDepth {
		return i, &SyntaxError{i, fmt.Sprintf("nested deeper than %d", fastjson.MaxDepth)}
	}
	selected := false
	for _, p := range alive {
		if len(l.paths[p].steps) == step {
			selected = true
			break
		}
	}
	start := i
	var kind Kind
	var err error
	switch c := l.b[i]; c {
	case '{':
		kind = KindObject
		i, err = l.object(i, depth, step, alive)
	case '[':
		kind = KindArray
		i, err = l.array(i, depth, step, alive)
	default:
		// A scalar: whatever path is still alive below it selects nothing.
		switch {
		case c == '"':
			kind = KindString
		case c == 't':
			kind = KindTrue
		case c == 'f':
			kind = KindFalse
		case c == 'n':
			kind = KindNull
		default:
			kind = KindNumber
		}
		i, err = validValue(l.b, i, depth)
	}
	if err != nil {
		return i, err
	}
	if selected {
		l.spans = append(l.spans, Span{Start: start, End: i, Kind: kind})
	}
	return i, nil
}

// next returns the reusable list for the paths alive one step down.
func (l *locator) next(step int) []int {
	for len(l.levels) <= step {
		l.levels = append(l.levels, make([]int, 0, len(l.paths)))
	}
	return l.levels[step][:0]
}

func (l *locator) object(i, depth, step int, alive []int) (int, error) {
	b := l.b
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return i, &SyntaxError{i, "expected a string key"}
		}
		keyStart := i + 1
		end, err := validString(b, keyStart)
		if err != nil {
			return end, err
		}
		key := b[keyStart : end-1]
		next := l.next(step)
		for _, p := range alive {
			if s := l.paths[p].steps; len(s) > step && s[step].kind == stepKey && keyEquals(key, s[step].key) {
				next = append(next, p)
			}
		}
		l.levels[step] = next
		if i = skipSpace(b, end); i >= len(b) || b[i] != ':' {
			return i, &SyntaxError{i, "expected ':' after a key"}
		}
		if i, err = l.value(skipSpace(b, i+1), depth+1, step+1, next); err != nil {
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
}

func (l *locator) array(i, depth, step int, alive []int) (int, error) {
	b := l.b
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, nil
	}
	for n := 0; ; n++ {
		next := l.next(step)
		for _, p := range alive {
			if s := l.paths[p].steps; len(s) > step && (s[step].kind == stepAll || s[step].kind == stepIndex && s[step].index == n) {
				next = append(next, p)
			}
		}
		l.levels[step] = next
		var err error
		if i, err = l.value(i, depth+1, step+1, next); err != nil {
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
}

// keyEquals compares a key as written between its quotes (valid: it was
// checked) with a path key.
func keyEquals(raw []byte, key string) bool {
	if slices.Contains(raw, '\\') {
		s, ok := unquote(raw)
		return ok && s == key
	}
	return string(raw) == key
}

// unquote decodes the escapes of a valid JSON string's contents.
func unquote(raw []byte) (string, bool) {
	var p fastjson.Parser
	quoted := make([]byte, 0, len(raw)+2)
	quoted = append(append(append(quoted, '"'), raw...), '"')
	v, err := p.ParseBytes(quoted)
	if err != nil {
		return "", false
	}
	s, err := v.StringBytes()
	return string(s), err == nil
}

// Unquote returns the contents of a string span (its escapes decoded).
func (s Span) Unquote(data []byte) (string, bool) {
	if s.Kind != KindString || s.End-s.Start < 2 {
		return "", false
	}
	raw := data[s.Start+1 : s.End-1]
	if !slices.Contains(raw, '\\') {
		return string(raw), true
	}
	return unquote(raw)
}
