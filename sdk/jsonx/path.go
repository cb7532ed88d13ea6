package jsonx

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// A Path selects values in a JSON document. Its syntax:
//
//	""               the whole document
//	name             key "name" of the top-level object
//	address.city     key "city" of the object at key "address"
//	items[0]         the first element of the array at key "items"
//	items[*].ssin    key "ssin" of every element of the array at key "items"
//	[*]              every element of a top-level array
//	a\.b             key "a.b": a backslash makes the next character literal
//
// Keys are separated by dots and index steps ([N] or [*]) follow a key or
// another index step directly. A step of the form .0 is the object key "0",
// never an array index. Empty keys, unbalanced brackets, negative or signed
// indexes and a trailing backslash are errors.
type Path struct {
	steps []step
}

type stepKind uint8

const (
	stepKey stepKind = iota
	stepIndex
	stepAll
)

type step struct {
	kind  stepKind
	index int
	key   string
}

// maxIndex bounds array indexes in paths; no document the SDK handles is
// anywhere near this long.
const maxIndex = 1<<31 - 1

// ParsePath parses a path. Use it to check paths once, for example those
// read from a step's configuration, before using them on every call.
func ParsePath(s string) (Path, error) {
	steps, err := parseSteps(s)
	if err != nil {
		return Path{}, err
	}
	return Path{steps: steps}, nil
}

// MustPath is like ParsePath but panics on a malformed path; it is meant for
// paths written in the source code.
func MustPath(s string) Path {
	p, err := ParsePath(s)
	if err != nil {
		panic(err)
	}
	return p
}

// IsRoot reports whether p selects the whole document.
func (p Path) IsRoot() bool { return len(p.steps) == 0 }

// String returns p in canonical form: ParsePath(p.String()) is p.
func (p Path) String() string {
	var b strings.Builder
	for i, s := range p.steps {
		switch s.kind {
		case stepKey:
			if i > 0 {
				b.WriteByte('.')
			}
			for j := 0; j < len(s.key); j++ {
				c := s.key[j]
				if c == '.' || c == '[' || c == ']' || c == '\\' {
					b.WriteByte('\\')
				}
				b.WriteByte(c)
			}
		case stepIndex:
			b.WriteByte('[')
			b.WriteString(strconv.Itoa(s.index))
			b.WriteByte(']')
		case stepAll:
			b.WriteString("[*]")
		}
	}
	return b.String()
}

// PathError reports a malformed path.
type PathError struct {
	Path   string // the path as written
	Offset int    // byte offset of the problem in Path
	Msg    string
}

func (e *PathError) Error() string {
	return fmt.Sprintf("jsonx: path %q: %s at offset %d", e.Path, e.Msg, e.Offset)
}

func parseSteps(s string) ([]step, error) {
	if s == "" {
		return nil, nil
	}
	bad := func(off int, msg string) error { return &PathError{Path: s, Offset: off, Msg: msg} }
	steps := make([]step, 0, 1+strings.Count(s, ".")+strings.Count(s, "["))
	i := 0
	needKey := s[0] != '['
	for i < len(s) {
		if needKey {
			start := i
			var key []byte // only built when the key has escapes
			j := i
			for j < len(s) {
				c := s[j]
				if c == '.' || c == '[' {
					break
				}
				if c == ']' {
					return nil, bad(j, "unexpected ']'")
				}
				if c == '\\' {
					if j+1 == len(s) {
						return nil, bad(j, "trailing backslash")
					}
					if key == nil {
						key = append(make([]byte, 0, len(s)-start), s[start:j]...)
					}
					key = append(key, s[j+1])
					j += 2
					continue
				}
				if key != nil {
					key = append(key, c)
				}
				j++
			}
			if j == start {
				return nil, bad(j, "empty key")
			}
			k := s[start:j]
			if key != nil {
				k = string(key)
			}
			steps = append(steps, step{kind: stepKey, key: k})
			i = j
			needKey = false
			continue
		}
		switch s[i] {
		case '.':
			i++
			if i == len(s) {
				return nil, bad(i, "empty key")
			}
			needKey = true
		case '[':
			end := strings.IndexByte(s[i:], ']')
			if end < 0 {
				return nil, bad(i, "missing ']'")
			}
			inner := s[i+1 : i+end]
			switch {
			case inner == "*":
				steps = append(steps, step{kind: stepAll})
			case inner == "":
				return nil, bad(i+1, "empty index")
			default:
				for k := 0; k < len(inner); k++ {
					if inner[k] < '0' || inner[k] > '9' {
						return nil, bad(i+1+k, "index must be digits or *")
					}
				}
				n, err := strconv.Atoi(inner)
				if err != nil || n > maxIndex {
					return nil, bad(i+1, "index too large")
				}
				steps = append(steps, step{kind: stepIndex, index: n})
			}
			i += end + 1
		default:
			return nil, bad(i, "expected '.' or '['")
		}
	}
	return steps, nil
}

var errRoot = errors.New("jsonx: the empty path (the whole document) cannot be deleted")
