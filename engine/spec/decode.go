package spec

import (
	"math"
	"reflect"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"
)

// decoder turns one YAML document into Go values by walking the AST itself,
// so that it can report every unknown key and type mismatch with its
// position instead of stopping at the first one.
type decoder struct {
	file    string
	src     Sources
	errs    *ErrorList
	anchors map[string]ast.Node
	start   int // len(*errs) when this document began
}

// fromYAMLer is implemented by types that decode themselves from a node.
type fromYAMLer interface {
	fromYAML(d *decoder, n ast.Node)
}

var (
	posType        = reflect.TypeFor[Pos]()
	atType         = reflect.TypeFor[map[string]Pos]()
	fromYAMLerType = reflect.TypeFor[fromYAMLer]()
)

func (d *decoder) pos(n ast.Node) Pos {
	if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 && !m.IsFlowStyle {
		n = m.Values[0].Key
	}
	t := n.GetToken()
	if t == nil || t.Position == nil {
		return Pos{File: d.file}
	}
	return Pos{File: d.file, Line: t.Position.Line, Col: t.Position.Column}
}

func (d *decoder) errorf(n ast.Node, format string, args ...any) {
	*d.errs = append(*d.errs, d.src.Errorf(d.pos(n), format, args...))
}

func (d *decoder) errCount() int { return len(*d.errs) - d.start }

// unwrap resolves tags, anchors and aliases to the node that holds the value.
func unwrap(d *decoder, n ast.Node) ast.Node {
	for range 32 {
		switch x := n.(type) {
		case *ast.TagNode:
			n = x.Value
		case *ast.AnchorNode:
			n = x.Value
		case *ast.AliasNode:
			name := x.Value.GetToken().Value
			target, ok := d.anchors[name]
			if !ok {
				d.errorf(x, "unknown alias *%s", name)
				return &ast.NullNode{BaseNode: &ast.BaseNode{}, Token: x.GetToken()}
			}
			n = target
		default:
			return n
		}
	}
	return n
}

func isNull(d *decoder, n ast.Node) bool {
	_, null := unwrap(d, n).(*ast.NullNode)
	return null
}

func describe(n ast.Node) string {
	switch n.(type) {
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.SequenceNode:
		return "a list"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode:
		return "an integer"
	case *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode:
		return "null"
	}
	return "a " + n.Type().String()
}

func keyText(k ast.MapKeyNode) (string, bool) {
	switch k := k.(type) {
	case *ast.StringNode:
		return k.Value, true
	case *ast.IntegerNode, *ast.BoolNode, *ast.FloatNode:
		return k.GetToken().Value, true
	}
	return "", false
}

// decode fills v (addressable) from n.
func (d *decoder) decode(n ast.Node, v reflect.Value) {
	if v.CanAddr() && v.Addr().Type().Implements(fromYAMLerType) {
		if _, null := n.(*ast.NullNode); null {
			return
		}
		v.Addr().Interface().(fromYAMLer).fromYAML(d, n)
		return
	}
	n = unwrap(d, n)
	if _, null := n.(*ast.NullNode); null {
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem())
	case reflect.Struct:
		d.decodeStruct(n, v)
	case reflect.Map:
		m, ok := n.(*ast.MappingNode)
		if !ok {
			d.errorf(n, "expected a mapping, found %s", describe(n))
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for _, kv := range m.Values {
			key, ok := keyText(kv.Key)
			if !ok {
				d.errorf(kv.Key, "expected a name as key, found %s", describe(kv.Key))
				continue
			}
			if v.MapIndex(reflect.ValueOf(key)).IsValid() {
				d.errorf(kv.Key, "duplicate key %q", key)
				continue
			}
			if isNull(d, kv.Value) && v.Type().Elem().Kind() == reflect.Pointer {
				d.errorf(kv.Key, "%q has no value", key)
				continue
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(kv.Value, ev)
			v.SetMapIndex(reflect.ValueOf(key), ev)
		}
	case reflect.Slice:
		s, ok := n.(*ast.SequenceNode)
		if !ok {
			d.errorf(n, "expected a list, found %s", describe(n))
			return
		}
		out := reflect.MakeSlice(v.Type(), 0, len(s.Values))
		for _, item := range s.Values {
			if isNull(d, item) && v.Type().Elem().Kind() == reflect.Pointer {
				d.errorf(item, "empty list entry")
				continue
			}
			ev := reflect.New(v.Type().Elem()).Elem()
			d.decode(item, ev)
			out = reflect.Append(out, ev)
		}
		v.Set(out)
	case reflect.String:
		s, ok := scalarText(n)
		if !ok {
			if l, isLit := n.(*ast.LiteralNode); isLit {
				s, ok = l.Value.Value, true
			}
		}
		if !ok {
			d.errorf(n, "expected a string, found %s", describe(n))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.errorf(n, "expected true or false, found %s", describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, ok := n.(*ast.IntegerNode)
		if !ok {
			d.errorf(n, "expected an integer, found %s", describe(n))
			return
		}
		var x int64
		switch iv := i.Value.(type) {
		case int64:
			x = iv
		case uint64:
			if iv > math.MaxInt64 {
				d.errorf(n, "integer out of range")
				return
			}
			x = int64(iv)
		}
		if v.OverflowInt(x) {
			d.errorf(n, "integer out of range")
			return
		}
		v.SetInt(x)
	case reflect.Interface:
		v.Set(reflect.ValueOf(d.plain(n)))
	default:
		d.errorf(n, "cannot decode into %s", v.Type())
	}
}

type fieldInfo struct {
	index    int
	name     string
	required bool
}

func structFields(t reflect.Type) (fields []fieldInfo, posIndex, atIndex int) {
	posIndex, atIndex = -1, -1
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Type == posType && f.Name == "Pos" {
			posIndex = i
			continue
		}
		if f.Type == atType && f.Name == "At" {
			atIndex = i
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		fields = append(fields, fieldInfo{index: i, name: name, required: opts == "required"})
	}
	return fields, posIndex, atIndex
}

func (d *decoder) decodeStruct(n ast.Node, v reflect.Value) {
	fields, posIndex, atIndex := structFields(v.Type())
	if posIndex >= 0 {
		v.Field(posIndex).Set(reflect.ValueOf(d.pos(n)))
	}
	var at map[string]Pos
	if atIndex >= 0 {
		at = map[string]Pos{}
		v.Field(atIndex).Set(reflect.ValueOf(at))
	}
	m, ok := n.(*ast.MappingNode)
	if !ok {
		d.errorf(n, "expected a mapping, found %s", describe(n))
		return
	}
	seen := map[string]bool{}
	for _, kv := range m.Values {
		key, ok := keyText(kv.Key)
		if !ok {
			d.errorf(kv.Key, "expected a field name, found %s", describe(kv.Key))
			continue
		}
		if seen[key] {
			d.errorf(kv.Key, "duplicate key %q", key)
			continue
		}
		seen[key] = true
		if at != nil {
			at[key] = d.pos(unwrap(d, kv.Value))
		}
		var f *fieldInfo
		for i := range fields {
			if fields[i].name == key {
				f = &fields[i]
				break
			}
		}
		if f == nil {
			if hint := suggest(key, keyNames(fields)); strings.HasPrefix(hint, ";") {
				d.errorf(kv.Key, "unknown key %q%s", key, hint)
			} else {
				d.errorf(kv.Key, "unknown key %q; known keys here: %s", key, strings.Join(keyNames(fields), ", "))
			}
			continue
		}
		d.decode(kv.Value, v.Field(f.index))
	}
	for _, f := range fields {
		if f.required && !seen[f.name] {
			d.errorf(n, "missing required key %q", f.name)
		}
	}
}

func keyNames(fields []fieldInfo) []string {
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	return names
}

// plain converts a node into the JSON data model.
func (d *decoder) plain(n ast.Node) any { return d.plainAt(n, "", nil) }

// plainAt is plain that also records the position of every value by its
// JSON pointer (ptr is the pointer of n) when ptrs is not nil.
func (d *decoder) plainAt(n ast.Node, ptr string, ptrs map[string]Pos) any {
	n = unwrap(d, n)
	if ptrs != nil {
		ptrs[ptr] = d.pos(n)
	}
	switch n := n.(type) {
	case *ast.MappingNode:
		out := make(map[string]any, len(n.Values))
		for _, kv := range n.Values {
			key, ok := keyText(kv.Key)
			if !ok {
				d.errorf(kv.Key, "expected a string key, found %s", describe(kv.Key))
				continue
			}
			if _, dup := out[key]; dup {
				d.errorf(kv.Key, "duplicate key %q", key)
				continue
			}
			out[key] = d.plainAt(kv.Value, ptr+"/"+escapePointer(key), ptrs)
		}
		return out
	case *ast.SequenceNode:
		out := make([]any, len(n.Values))
		for i, item := range n.Values {
			out[i] = d.plainAt(item, ptr+"/"+strconv.Itoa(i), ptrs)
		}
		return out
	case *ast.StringNode:
		return n.Value
	case *ast.LiteralNode:
		return n.Value.Value
	case *ast.IntegerNode:
		switch iv := n.Value.(type) {
		case int64:
			return float64(iv)
		case uint64:
			return float64(iv)
		}
	case *ast.FloatNode:
		return n.Value
	case *ast.BoolNode:
		return n.Value
	case *ast.NullNode:
		return nil
	default:
		d.errorf(n, "unsupported value: %s", describe(n))
	}
	return nil
}

func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}
