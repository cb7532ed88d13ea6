// Package jsonx reads and edits JSON documents by path without reflection.
//
// It is the fast path for plugins that touch a few fields of a document: a
// Doc is parsed once with github.com/valyala/fastjson, values are found by
// Path (`a.b`, `items[*].ssin`), changed, deleted or projected, and the
// document is written back. Nothing goes through encoding/json, whose
// reflection is the slow part of a WebAssembly guest.
//
//	d, err := jsonx.Parse(in)
//	if err != nil { ... }
//	defer d.Release()
//	name, _ := d.String("person.name")
//	d.SetString("person.greeting", "Hello "+name)
//	d.Delete("person.ssin")
//	out := d.Marshal()
//
// A Doc is not safe for concurrent use. Values returned by a Doc (the
// *fastjson.Value of Get, GetAll and Root) are valid until the Doc parses
// another document or is released; strings and byte slices it returns are
// copies. Change the document through its methods rather than fastjson's:
// they store strings faithfully and never let the document contain itself.
//
// Methods taking a path as a string parse it on every call; a malformed path
// matches nothing in the getters and is returned as a *PathError by the
// methods that return an error. Check paths that come from configuration
// once with ParsePath.
package jsonx

import (
	"fmt"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// Doc is a parsed JSON document. The zero Doc holds JSON null and is ready
// for Parse.
type Doc struct {
	p    fastjson.Parser
	a    fastjson.Arena
	root *fastjson.Value
	size int // length of the parsed text: Marshal's first guess

	pooled   bool // from Parse: Release may put it in the pool
	released bool // in the pool: a second Release must not put it there twice
}

// docs recycles Docs: a fresh fastjson parser grows its value cache on every
// document, which costs several times the parse itself.
var docs = sync.Pool{New: func() any { return new(Doc) }}

// Parse parses data, which must be one valid JSON value (RFC 8259; surrounding
// white space allowed, nesting at most fastjson.MaxDepth). data is copied and
// may be reused by the caller.
//
// The Doc comes from a pool: call Release when done with it (typically with
// defer) so that the next Parse reuses its buffers.
func Parse(data []byte) (*Doc, error) {
	d := docs.Get().(*Doc)
	d.pooled = true
	if err := d.Parse(data); err != nil {
		d.Release()
		return nil, err
	}
	return d, nil
}

// Release gives a Doc that Parse returned back to the pool Parse takes Docs
// from. Neither d nor any value obtained from it may be used afterwards;
// slices returned by Marshal and strings returned by String and Strings
// remain valid. Releasing is optional (a Doc that is not released is
// garbage-collected) and a no-op for a Doc not made by Parse or released
// already.
func (d *Doc) Release() {
	if !d.pooled || d.released {
		return
	}
	d.released = true
	d.a.Reset()
	d.root = nil
	d.size = 0
	docs.Put(d)
}

// Parse replaces the document held by d with data, reusing d's buffers.
// Values obtained from d before are invalid afterwards. On error d holds null.
func (d *Doc) Parse(data []byte) error {
	d.released = false
	d.a.Reset()
	d.root = nil
	d.size = 0
	if err := validate(data); err != nil {
		return err
	}
	v, err := d.p.ParseBytes(data)
	if err != nil {
		return fmt.Errorf("jsonx: %w", err)
	}
	d.root = v
	d.size = len(data)
	return nil
}

// Root returns the whole document.
func (d *Doc) Root() *fastjson.Value {
	if d.root == nil {
		return null
	}
	return d.root
}

// Arena returns the arena d allocates new values from, to build values for
// Set (numbers, objects, arrays). For strings use d.NewString or
// d.SetString: the Arena's NewString stores control characters such as \a
// wrongly (fastjson v1.6.10 escapes with strconv.Quote).
func (d *Doc) Arena() *fastjson.Arena { return &d.a }

// Marshal returns the document as JSON.
func (d *Doc) Marshal() []byte { return d.AppendTo(make([]byte, 0, d.size+d.size/8+16)) }

// AppendTo appends the document as JSON to dst.
func (d *Doc) AppendTo(dst []byte) []byte { return AppendValue(dst, d.Root()) }

// Get returns the first value path matches, or nil.
func (d *Doc) Get(path string) *fastjson.Value {
	steps, err := parseSteps(path)
	if err != nil {
		return nil
	}
	var found *fastjson.Value
	visit(d.Root(), steps, func(v *fastjson.Value) bool {
		found = v
		return false
	})
	return found
}

// GetAll returns every value path matches, in document order.
func (d *Doc) GetAll(path string) []*fastjson.Value {
	steps, err := parseSteps(path)
	if err != nil {
		return nil
	}
	var all []*fastjson.Value
	visit(d.Root(), steps, func(v *fastjson.Value) bool {
		all = append(all, v)
		return true
	})
	return all
}

// Exists reports whether path matches at least one value (JSON null counts).
func (d *Doc) Exists(path string) bool { return d.Get(path) != nil }

// String returns the first string path matches. The second result is false
// when path matches no string.
func (d *Doc) String(path string) (string, bool) {
	steps, err := parseSteps(path)
	if err != nil {
		return "", false
	}
	var s string
	var ok bool
	visit(d.Root(), steps, func(v *fastjson.Value) bool {
		if v.Type() == fastjson.TypeString {
			b, _ := v.StringBytes()
			s, ok = string(b), true
			return false
		}
		return true
	})
	return s, ok
}

// Strings returns every string path matches, in document order; values of
// other types are skipped.
func (d *Doc) Strings(path string) []string {
	var out []string
	for _, v := range d.GetAll(path) {
		if v.Type() == fastjson.TypeString {
			b, _ := v.StringBytes()
			out = append(out, string(b))
		}
	}
	return out
}

// visit calls fn for every value the steps match under v, in document order,
// until fn returns false. It reports whether to go on.
func visit(v *fastjson.Value, steps []step, fn func(*fastjson.Value) bool) bool {
	for len(steps) > 0 {
		s := steps[0]
		switch s.kind {
		case stepKey:
			o, err := v.Object()
			if err != nil {
				return true
			}
			v = o.Get(s.key)
			if v == nil {
				return true
			}
		case stepIndex:
			a, err := v.Array()
			if err != nil || s.index >= len(a) {
				return true
			}
			v = a[s.index]
		case stepAll:
			a, err := v.Array()
			if err != nil {
				return true
			}
			for _, e := range a {
				if !visit(e, steps[1:], fn) {
					return false
				}
			}
			return true
		}
		steps = steps[1:]
	}
	return fn(v)
}

// NewString returns a string value holding s exactly (invalid UTF-8 is
// kept; Marshal writes each invalid byte as U+FFFD).
func (d *Doc) NewString(s string) *fastjson.Value {
	if arenaSafe(s) {
		return d.a.NewString(s)
	}
	// fastjson's Arena escapes with strconv.Quote, whose \a, \v, \x and \U
	// escapes are not JSON: build the raw JSON string here and let a
	// parser of its own hold it.
	raw := make([]byte, 0, len(s)+16)
	raw = append(raw, '"')
	raw = appendEscaped(raw, s, false)
	raw = append(raw, '"')
	var p fastjson.Parser
	v, err := p.ParseBytes(raw)
	if err != nil {
		panic("jsonx: BUG: cannot parse an escaped string: " + err.Error())
	}
	return v
}

// arenaSafe reports whether fastjson's Arena.NewString stores s faithfully:
// strconv.Quote's escapes for it are all JSON escapes.
func arenaSafe(s string) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c < 0x20 && c != '\b' && c != '\t' && c != '\n' && c != '\f' && c != '\r' || c == 0x7f {
				return false // Quote writes \a, \v, \x00 or \x7f
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return false
		}
		if r > 0xFFFF && !strconv.IsPrint(r) {
			return false
		}
		i += n
	}
	return true
}

// SetRaw parses raw as one JSON value and sets it at path like Set.
func (d *Doc) SetRaw(path string, raw []byte) error {
	if err := validate(raw); err != nil {
		return fmt.Errorf("jsonx: SetRaw %q: %w", path, err)
	}
	p := new(fastjson.Parser) // its values must outlive the call: one parser each
	v, err := p.ParseBytes(raw)
	if err != nil {
		return fmt.Errorf("jsonx: SetRaw %q: %w", path, err)
	}
	return d.Set(path, v)
}

// SetString sets the string s at path like Set.
func (d *Doc) SetString(path, s string) error { return d.Set(path, d.NewString(s)) }

// Set puts v at every place path matches:
//
//   - a key step on an object replaces the key's value or adds the key at the
//     end; a missing key followed by another key step is created as an empty
//     object, so Set("a.b.c", v) on {} gives {"a":{"b":{"c":v}}};
//   - an index step replaces that element; it must be in range;
//   - a [*] step sets every element (an empty or missing array: nothing to do).
//
// Any other type along the way is an error (a key step on an array, say), as
// is a missing key followed by an index step. The empty path replaces the
// whole document. v is stored, not copied, where path matches once; each
// further match gets a copy. A v that already holds the place it is set at is
// copied too, so a document never contains itself. On error, places set
// before the error keep their new value.
func (d *Doc) Set(path string, v *fastjson.Value) error {
	steps, err := parseSteps(path)
	if err != nil {
		return err
	}
	if v == nil {
		v = null
	}
	if len(steps) == 0 {
		d.root = v
		return nil
	}
	s := setter{d: d, v: v, path: path, steps: steps}
	return s.set(d.Root(), steps)
}

type setter struct {
	d     *Doc
	v     *fastjson.Value
	path  string
	steps []step
	used  bool // v is in the document: the next match gets a copy
}

func (s *setter) value(container *fastjson.Value) *fastjson.Value {
	v := s.v
	if s.used || contains(v, container) {
		v = clone(&s.d.a, v)
	}
	s.used = true
	return v
}

func (s *setter) set(v *fastjson.Value, steps []step) error {
	st := steps[0]
	last := len(steps) == 1
	switch st.kind {
	case stepKey:
		o, err := v.Object()
		if err != nil {
			return s.errorf(steps, "cannot set key %q in %s", st.key, v.Type())
		}
		if last {
			o.Set(st.key, s.value(v))
			return nil
		}
		child := o.Get(st.key)
		if child == nil {
			if steps[1].kind != stepKey {
				if steps[1].kind == stepAll {
					return nil // no array, no elements to set
				}
				return s.errorf(steps, "no array at key %q", st.key)
			}
			child = s.d.a.NewObject()
			o.Set(st.key, child)
		}
		return s.set(child, steps[1:])
	case stepIndex:
		a, err := v.Array()
		if err != nil {
			return s.errorf(steps, "cannot index %s", v.Type())
		}
		if st.index >= len(a) {
			return s.errorf(steps, "index %d out of range (length %d)", st.index, len(a))
		}
		if last {
			a[st.index] = s.value(v)
			return nil
		}
		return s.set(a[st.index], steps[1:])
	default: // stepAll
		a, err := v.Array()
		if err != nil {
			return s.errorf(steps, "cannot iterate over %s", v.Type())
		}
		for i := range a {
			if last {
				a[i] = s.value(v)
				continue
			}
			if err := s.set(a[i], steps[1:]); err != nil {
				return err
			}
		}
		return nil
	}
}

// errorf reports a failure at the first of the steps in rest.
func (s *setter) errorf(rest []step, format string, args ...any) error {
	at := Path{steps: s.steps[:len(s.steps)-len(rest)]}.String()
	if at == "" {
		at = "the document"
	}
	return fmt.Errorf("jsonx: Set %q: at %s: %s", s.path, at, fmt.Sprintf(format, args...))
}

// Update calls fn for every value path matches and puts what fn returns in
// its place (fn may return its argument; nil means JSON null). Nothing is
// created: missing keys, out-of-range indexes and values of the wrong type
// along the way match nothing. It returns the number of values fn was
// called for. The empty path updates the whole document. fn must not change
// the document other than through its result.
func (d *Doc) Update(path string, fn func(v *fastjson.Value) *fastjson.Value) (int, error) {
	steps, err := parseSteps(path)
	if err != nil {
		return 0, err
	}
	if len(steps) == 0 {
		d.root = orNull(fn(d.Root()))
		return 1, nil
	}
	n := 0
	eachParent(d.Root(), steps, func(parent *fastjson.Value, st step) {
		switch st.kind {
		case stepKey:
			o, err := parent.Object()
			if err != nil {
				return
			}
			if old := o.Get(st.key); old != nil {
				n++
				if nv := orNull(fn(old)); nv != old {
					o.Set(st.key, nv)
				}
			}
		case stepIndex:
			a, err := parent.Array()
			if err == nil && st.index < len(a) {
				n++
				a[st.index] = orNull(fn(a[st.index]))
			}
		case stepAll:
			a, _ := parent.Array()
			for i := range a {
				n++
				a[i] = orNull(fn(a[i]))
			}
		}
	})
	return n, nil
}

// UpdateStrings replaces every string path matches with fn of it; values of
// other types are left alone. It returns the number of strings replaced.
func (d *Doc) UpdateStrings(path string, fn func(s string) string) (int, error) {
	n := 0
	_, err := d.Update(path, func(v *fastjson.Value) *fastjson.Value {
		if v.Type() != fastjson.TypeString {
			return v
		}
		b, _ := v.StringBytes()
		old := string(b)
		n++
		s := fn(old)
		if s == old {
			return v
		}
		return d.NewString(s)
	})
	return n, err
}

// Delete removes every value path matches: the key from its object or the
// element from its array (later elements move down). A path that matches
// nothing is not an error. The empty path is an error.
func (d *Doc) Delete(path string) error {
	steps, err := parseSteps(path)
	if err != nil {
		return err
	}
	if len(steps) == 0 {
		return errRoot
	}
	eachParent(d.Root(), steps, func(parent *fastjson.Value, st step) {
		switch st.kind {
		case stepKey:
			o, err := parent.Object()
			if err != nil {
				return
			}
			for o.Get(st.key) != nil { // duplicate keys: remove them all
				o.Del(st.key)
			}
		case stepIndex:
			if a, err := parent.Array(); err == nil && st.index < len(a) {
				parent.Del(strconv.Itoa(st.index))
			}
		case stepAll:
			a, _ := parent.Array()
			for i := len(a) - 1; i >= 0; i-- {
				parent.Del(strconv.Itoa(i))
			}
		}
	})
	return nil
}

// eachParent calls fn for every value the steps but the last match, with the
// last step. Containers are visited before fn may change them, so fn may
// replace or remove what the last step selects.
func eachParent(root *fastjson.Value, steps []step, fn func(parent *fastjson.Value, last step)) {
	last := steps[len(steps)-1]
	visit(root, steps[:len(steps)-1], func(parent *fastjson.Value) bool {
		fn(parent, last)
		return true
	})
}

// Keep reduces the document to the values the paths match and the objects
// and arrays that contain them (a projection): every other key and element
// is removed. Objects keep their keys' order and arrays their elements'
// order; an array element with nothing kept in it is removed, so indexes may
// change: Keep("items[*].ssin") on {"items":[{"ssin":"1","n":1},{"n":2}]}
// gives {"items":[{"ssin":"1"}]}. When nothing matches, the document becomes
// an empty object or array (or null if it is neither). A malformed path is
// an error and leaves the document unchanged.
func (d *Doc) Keep(paths ...string) error {
	all := make([][]step, 0, len(paths))
	for _, p := range paths {
		steps, err := parseSteps(p)
		if err != nil {
			return err
		}
		all = append(all, steps)
	}
	root := d.Root()
	if v, ok := d.project(root, all); ok {
		d.root = v
		return nil
	}
	switch root.Type() {
	case fastjson.TypeObject:
		d.root = d.a.NewObject()
	case fastjson.TypeArray:
		d.root = d.a.NewArray()
	default:
		d.root = null
	}
	return nil
}

// project returns the part of v the paths select, and whether they select
// anything.
func (d *Doc) project(v *fastjson.Value, paths [][]step) (*fastjson.Value, bool) {
	for _, p := range paths {
		if len(p) == 0 {
			return v, true
		}
	}
	var sub [][]step
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		var out *fastjson.Value
		o.Visit(func(k []byte, child *fastjson.Value) {
			sub = sub[:0]
			for _, p := range paths {
				if p[0].kind == stepKey && p[0].key == string(k) {
					sub = append(sub, p[1:])
				}
			}
			if len(sub) == 0 {
				return
			}
			pv, ok := d.project(child, sub)
			if !ok {
				return
			}
			if out == nil {
				out = d.a.NewObject()
			}
			oo, _ := out.Object()
			appendKV(oo, string(k), pv)
		})
		return out, out != nil
	case fastjson.TypeArray:
		a, _ := v.Array()
		var out *fastjson.Value
		n := 0
		for i, e := range a {
			sub = sub[:0]
			for _, p := range paths {
				if p[0].kind == stepAll || p[0].kind == stepIndex && p[0].index == i {
					sub = append(sub, p[1:])
				}
			}
			if len(sub) == 0 {
				continue
			}
			pv, ok := d.project(e, sub)
			if !ok {
				continue
			}
			if out == nil {
				out = d.a.NewArray()
			}
			out.SetArrayItem(n, pv)
			n++
		}
		return out, out != nil
	}
	return nil, false
}

// appendKV adds k: v at the end of o unless o has k already: of duplicate
// keys in a source document, copies keep the first, the one Get returns.
func appendKV(o *fastjson.Object, k string, v *fastjson.Value) {
	if o.Get(k) == nil {
		o.Set(k, v)
	}
}

var null = fastjson.MustParse("null")

func orNull(v *fastjson.Value) *fastjson.Value {
	if v == nil {
		return null
	}
	return v
}

// contains reports whether target is v or inside it.
func contains(v, target *fastjson.Value) bool {
	if v == target {
		return true
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		found := false
		o.Visit(func(_ []byte, c *fastjson.Value) {
			if !found && contains(c, target) {
				found = true
			}
		})
		return found
	case fastjson.TypeArray:
		a, _ := v.Array()
		for _, c := range a {
			if contains(c, target) {
				return true
			}
		}
	}
	return false
}

// clone returns a deep copy of v allocated from a. Scalars are immutable and
// shared.
func clone(a *fastjson.Arena, v *fastjson.Value) *fastjson.Value {
	switch v.Type() {
	case fastjson.TypeObject:
		out := a.NewObject()
		o, _ := v.Object()
		oo, _ := out.Object()
		o.Visit(func(k []byte, c *fastjson.Value) {
			appendKV(oo, string(k), clone(a, c))
		})
		return out
	case fastjson.TypeArray:
		out := a.NewArray()
		src, _ := v.Array()
		for i, c := range src {
			out.SetArrayItem(i, clone(a, c))
		}
		return out
	}
	return v
}
