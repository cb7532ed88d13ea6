package config

import (
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/openfsb/fsb/engine/spec"
)

// Duration is a time.Duration written as "250ms", "2s", "1m30s".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalText writes the duration as Go writes it ("1m30s").
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// ByteSize is a size written as 1048576, "512KiB", "8MiB".
type ByteSize int64

var (
	durationType = reflect.TypeFor[Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// decoder walks the YAML AST itself so that it reports every unknown key
// and wrong type with its position, not only the first.
type decoder struct {
	file string
	c    *Config
	errs spec.ErrorList
}

func decode(name string, b []byte) (*Config, spec.ErrorList) {
	c := Default()
	c.File, c.pos = name, map[string]spec.Pos{}
	c.src = spec.Sources{name: strings.Split(string(b), "\n")}
	d := &decoder{file: name, c: c}
	f, err := parser.ParseBytes(b, 0)
	if err != nil {
		pos := spec.Pos{File: name, Line: 1, Col: 1}
		msg := err.Error()
		var se *yaml.SyntaxError
		if errors.As(err, &se) {
			msg = se.Message
			if se.Token != nil && se.Token.Position != nil {
				pos.Line, pos.Col = se.Token.Position.Line, se.Token.Position.Column
			}
		}
		return c, spec.ErrorList{c.src.Errorf(pos, "yaml syntax: %s (fix the YAML first)", msg)}
	}
	for i, doc := range f.Docs {
		if doc.Body == nil {
			continue
		}
		if i > 0 {
			d.errorf(doc.Body, "the configuration is one YAML document: remove the --- and what follows")
			break
		}
		body := unwrap(doc.Body)
		if _, ok := body.(*ast.MappingNode); !ok {
			if _, ok := body.(*ast.MappingValueNode); !ok {
				d.errorf(body, "the configuration must be a mapping of keys (flows:, listeners:, …), found %s", describe(body))
				continue
			}
		}
		d.decode(body, reflect.ValueOf(c).Elem(), "")
	}
	return c, d.errs
}

func (d *decoder) pos(n ast.Node) spec.Pos {
	t := n.GetToken()
	if t == nil || t.Position == nil {
		return spec.Pos{File: d.file}
	}
	return spec.Pos{File: d.file, Line: t.Position.Line, Col: t.Position.Column}
}

func (d *decoder) errorf(n ast.Node, format string, args ...any) {
	d.errs = append(d.errs, d.c.src.Errorf(d.pos(n), format, args...))
}

// unwrap skips tags and anchors; aliases are refused (a configuration has
// no need for them, and they would hide where a value comes from).
func unwrap(n ast.Node) ast.Node {
	for range 16 {
		switch x := n.(type) {
		case *ast.TagNode:
			n = x.Value
		case *ast.AnchorNode:
			n = x.Value
		default:
			return n
		}
	}
	return n
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
	case *ast.FloatNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	case *ast.NullNode:
		return "nothing"
	case *ast.AliasNode:
		return "an alias"
	}
	return "a " + n.Type().String()
}

func pairs(n ast.Node) ([]*ast.MappingValueNode, bool) {
	switch m := n.(type) {
	case *ast.MappingNode:
		return m.Values, true
	case *ast.MappingValueNode:
		return []*ast.MappingValueNode{m}, true
	}
	return nil, false
}

// decode fills v from n; key is v's path in the file (a.b.c).
func (d *decoder) decode(n ast.Node, v reflect.Value, key string) {
	n = unwrap(n)
	if _, null := n.(*ast.NullNode); null {
		return
	}
	if _, alias := n.(*ast.AliasNode); alias {
		d.errorf(n, "%s: aliases are not supported in the configuration: write the value", key)
		return
	}
	switch {
	case v.Type() == durationType:
		s, ok := scalar(n)
		x, err := time.ParseDuration(s)
		if !ok || err != nil || x < 0 {
			d.errorf(n, "%s: expected a duration such as \"2s\" or \"500ms\", found %s", key, shown(n, s, ok))
			return
		}
		v.SetInt(int64(x))
		return
	case v.Type() == byteSizeType:
		s, ok := scalar(n)
		x, err := spec.ParseByteSize(s)
		if !ok || err != nil {
			d.errorf(n, "%s: expected a size such as \"512KiB\" or \"8MiB\", found %s", key, shown(n, s, ok))
			return
		}
		v.SetInt(x)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		kvs, ok := pairs(n)
		if !ok {
			d.errorf(n, "%s: expected a mapping, found %s", orTop(key), describe(n))
			return
		}
		fields := fieldsOf(v.Type())
		seen := map[string]bool{}
		for _, kv := range kvs {
			name, ok := scalar(kv.Key)
			if !ok {
				d.errorf(kv.Key, "expected a key name, found %s", describe(kv.Key))
				continue
			}
			path := join(key, name)
			if seen[name] {
				d.errorf(kv.Key, "duplicate key %q: keep one", path)
				continue
			}
			seen[name] = true
			i, ok := fields[name]
			if !ok {
				msg := fmt.Sprintf("unknown key %q", path)
				if s := spec.Closest(name, sortedKeys(fields)); s != "" {
					msg += fmt.Sprintf(": did you mean %q?", s)
				} else {
					msg += fmt.Sprintf(": %s takes %s", orTop(key), strings.Join(sortedKeys(fields), ", "))
				}
				d.errorf(kv.Key, "%s", msg)
				continue
			}
			d.c.pos[path] = d.pos(kv.Value)
			if _, null := unwrap(kv.Value).(*ast.NullNode); null {
				d.c.pos[path] = d.pos(kv.Key)
			}
			d.decode(kv.Value, v.Field(i), path)
		}
	case reflect.Slice:
		seq, ok := n.(*ast.SequenceNode)
		if !ok {
			d.errorf(n, "%s: expected a list such as [a, b], found %s", key, describe(n))
			return
		}
		out := reflect.MakeSlice(v.Type(), len(seq.Values), len(seq.Values))
		for i, item := range seq.Values {
			path := fmt.Sprintf("%s[%d]", key, i)
			d.c.pos[path] = d.pos(item)
			d.decode(item, out.Index(i), path)
		}
		v.Set(out)
	case reflect.Map:
		kvs, ok := pairs(n)
		if !ok {
			d.errorf(n, "%s: expected a mapping, found %s", key, describe(n))
			return
		}
		m := reflect.MakeMap(v.Type())
		for _, kv := range kvs {
			name, ok := scalar(kv.Key)
			if !ok {
				d.errorf(kv.Key, "%s: expected a key name, found %s", key, describe(kv.Key))
				continue
			}
			val := reflect.New(v.Type().Elem()).Elem()
			d.decode(kv.Value, val, join(key, name))
			m.SetMapIndex(reflect.ValueOf(name), val)
		}
		v.Set(m)
	case reflect.String:
		s, ok := scalar(n)
		if !ok {
			d.errorf(n, "%s: expected a string, found %s", key, describe(n))
			return
		}
		v.SetString(s)
	case reflect.Bool:
		b, ok := n.(*ast.BoolNode)
		if !ok {
			d.errorf(n, "%s: expected true or false, found %s", key, describe(n))
			return
		}
		v.SetBool(b.Value)
	case reflect.Int:
		s, _ := scalar(n)
		x, err := strconv.Atoi(s)
		if _, isInt := n.(*ast.IntegerNode); !isInt || err != nil {
			d.errorf(n, "%s: expected a whole number, found %s", key, describe(n))
			return
		}
		v.SetInt(int64(x))
	case reflect.Float64:
		s, _ := scalar(n)
		x, err := strconv.ParseFloat(s, 64)
		_, isInt := n.(*ast.IntegerNode)
		_, isFloat := n.(*ast.FloatNode)
		if !isInt && !isFloat || err != nil {
			d.errorf(n, "%s: expected a number, found %s", key, describe(n))
			return
		}
		v.SetFloat(x)
	default:
		d.errorf(n, "%s: unsupported value", key)
	}
}

// scalar returns the text of a scalar node.
func scalar(n ast.Node) (string, bool) {
	switch x := unwrap(n).(type) {
	case *ast.StringNode:
		return x.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return x.GetToken().Value, true
	case *ast.LiteralNode:
		return x.Value.Value, true
	}
	return "", false
}

func shown(n ast.Node, s string, ok bool) string {
	if ok {
		return strconv.Quote(s)
	}
	return describe(n)
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func orTop(key string) string {
	if key == "" {
		return "the configuration"
	}
	return key
}

// fieldsOf maps yaml keys to field indexes.
func fieldsOf(t reflect.Type) map[string]int {
	out := map[string]int{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("yaml")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		out[tag] = i
	}
	return out
}

func sortedKeys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}

// EnvName is the environment variable that overrides a key: FSB_, then the
// key's path with each camelCase word upper-cased and joined by _
// (listeners.consumer.addr → FSB_LISTENERS_CONSUMER_ADDR,
// keys.adminToken → FSB_KEYS_ADMIN_TOKEN).
func EnvName(key string) string {
	var b strings.Builder
	b.WriteString("FSB")
	for _, part := range strings.Split(key, ".") {
		b.WriteByte('_')
		for i, r := range part {
			if unicode.IsUpper(r) && i > 0 && !unicode.IsUpper(rune(part[i-1])) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToUpper(r))
		}
	}
	return b.String()
}

// Key is one configuration key and the environment variable that overrides it.
type Key struct {
	Path string // listeners.consumer.addr
	Env  string // FSB_LISTENERS_CONSUMER_ADDR
	Type string // string, bool, int, number, duration, size, list, map
}

// AllKeys lists every key of the file, in the order of the model.
func AllKeys() []Key {
	var out []Key
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == "" || tag == "-" {
				continue
			}
			path := join(prefix, tag)
			if f.Type.Kind() == reflect.Struct && f.Type != durationType {
				walk(f.Type, path)
				continue
			}
			out = append(out, Key{Path: path, Env: EnvName(path), Type: typeName(f.Type)})
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return out
}

func typeName(t reflect.Type) string {
	switch {
	case t == durationType:
		return "duration"
	case t == byteSizeType:
		return "size"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "bool"
	case reflect.Int:
		return "int"
	case reflect.Float64:
		return "number"
	case reflect.Slice:
		return "list"
	case reflect.Map:
		return "map"
	}
	return "string"
}

// applyEnv overrides keys with the FSB_ variables that are set. Lists are
// comma-separated; maps are name=value pairs, comma-separated.
func (c *Config) applyEnv(lookupEnv func(string) (string, bool)) spec.ErrorList {
	var errs spec.ErrorList
	for _, k := range AllKeys() {
		s, ok := lookupEnv(k.Env)
		if !ok {
			continue
		}
		v := fieldByPath(reflect.ValueOf(c).Elem(), k.Path)
		if err := setFromText(v, s); err != nil {
			errs = append(errs, &spec.Error{Pos: spec.Pos{File: "environment " + k.Env}, Msg: fmt.Sprintf("overrides %s: %v", k.Path, err)})
			continue
		}
		c.pos[k.Path] = spec.Pos{File: "environment " + k.Env}
	}
	return errs
}

func fieldByPath(v reflect.Value, path string) reflect.Value {
	for _, part := range strings.Split(path, ".") {
		v = v.Field(fieldsOf(v.Type())[part])
	}
	return v
}

func setFromText(v reflect.Value, s string) error {
	switch {
	case v.Type() == durationType:
		x, err := time.ParseDuration(s)
		if err != nil || x < 0 {
			return fmt.Errorf("expected a duration such as \"2s\", found %q", s)
		}
		v.SetInt(int64(x))
		return nil
	case v.Type() == byteSizeType:
		x, err := spec.ParseByteSize(s)
		if err != nil {
			return err
		}
		v.SetInt(x)
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("expected true or false, found %q", s)
		}
		v.SetBool(b)
	case reflect.Int:
		x, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("expected a whole number, found %q", s)
		}
		v.SetInt(int64(x))
	case reflect.Float64:
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("expected a number, found %q", s)
		}
		v.SetFloat(x)
	case reflect.Slice:
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		v.Set(reflect.ValueOf(out))
	case reflect.Map:
		m := map[string]string{}
		for _, p := range strings.Split(s, ",") {
			k, val, ok := strings.Cut(strings.TrimSpace(p), "=")
			if !ok || k == "" {
				return fmt.Errorf("expected name=value pairs separated by commas, found %q", p)
			}
			m[k] = val
		}
		v.Set(reflect.ValueOf(m))
	}
	return nil
}
