package spec

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Expr is an expression's source text and where it starts in its file.
type Expr struct {
	Pos Pos
	Src string
	// Block is true for a multi-line block scalar (| or >): the text starts
	// on the line after Pos.
	Block bool
}

// At maps a 1-based line and column inside the expression text to a
// position in the YAML file.
func (e *Expr) At(line, col int) Pos {
	p := e.Pos
	if e.Block {
		p.Line += line
		p.Col += col - 1
		return p
	}
	if line > 1 {
		p.Line += line - 1
		p.Col = col
		return p
	}
	p.Col += col - 1
	return p
}

func (e *Expr) fromYAML(d *decoder, n ast.Node) {
	e.Pos = d.pos(n)
	switch n := n.(type) {
	case *ast.StringNode:
		e.Src = n.Value
		if t := n.GetToken(); t.Type == token.DoubleQuoteType || t.Type == token.SingleQuoteType {
			e.Pos.Col++
		}
	case *ast.LiteralNode:
		e.Src = n.Value.Value
		e.Block = true
	case *ast.BoolNode, *ast.IntegerNode, *ast.FloatNode:
		e.Src = n.GetToken().Value
	default:
		d.errorf(n, "expected an expression (a string), found %s", describe(n))
	}
	if strings.TrimSpace(e.Src) == "" && d.errCount() == 0 {
		d.errorf(n, "empty expression")
	}
}

// Duration is a time.Duration written as "250ms", "2s", "1m".
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (v *Duration) fromYAML(d *decoder, n ast.Node) {
	s, ok := scalarText(n)
	if !ok {
		d.errorf(n, "expected a duration such as \"2s\" or \"500ms\", found %s", describe(n))
		return
	}
	x, err := time.ParseDuration(s)
	if err != nil || x < 0 {
		d.errorf(n, "invalid duration %q: write it as \"2s\", \"500ms\" or \"1m30s\"", s)
		return
	}
	*v = Duration(x)
}

// ByteSize is a size written as 1048576, "512KiB", "4MiB" or "1GiB".
type ByteSize int64

func (v *ByteSize) fromYAML(d *decoder, n ast.Node) {
	s, ok := scalarText(n)
	if !ok {
		d.errorf(n, "expected a size such as \"512KiB\" or \"4MiB\", found %s", describe(n))
		return
	}
	x, err := ParseByteSize(s)
	if err != nil {
		d.errorf(n, "%v", err)
		return
	}
	*v = ByteSize(x)
}

// ParseByteSize reads "123", "64KiB", "4MiB", "1GiB" (also KB/MB/GB, as powers of 1000).
func ParseByteSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("invalid size %q: write it as a number of bytes or with KiB, MiB or GiB", s)
	}
	return n * mult, nil
}

// Value is a literal YAML value in the JSON data model (map[string]any,
// []any, string, float64, bool, nil): JSON Schemas, default bodies, test data.
type Value struct {
	Pos Pos
	V   any
	// Ptrs holds the position of every value inside, by JSON pointer
	// ("" is the value itself, "/properties/id/type" a nested one).
	Ptrs map[string]Pos
}

func (v *Value) fromYAML(d *decoder, n ast.Node) {
	v.Pos = d.pos(n)
	v.Ptrs = map[string]Pos{}
	v.V = d.plainAt(n, "", v.Ptrs)
}

// At returns the position of the value at a JSON pointer, or of the
// nearest enclosing value that has one.
func (v *Value) At(ptr string) Pos {
	for {
		if p, ok := v.Ptrs[ptr]; ok {
			return p
		}
		i := strings.LastIndexByte(ptr, '/')
		if i < 0 {
			return v.Pos
		}
		ptr = ptr[:i]
	}
}

// Output is a tree of expressions that builds a JSON value: a string is an
// expression, a mapping builds an object with its keys in the written order,
// a sequence builds an array, and numbers, booleans and null are literals.
type Output struct {
	Pos     Pos
	Expr    *Expr
	Fields  []*OutputField
	Items   []*Output
	Literal any
	Kind    OutputKind
}

// OutputKind says which part of an Output is set.
type OutputKind int

// The kinds of Output.
const (
	OutputExpr OutputKind = iota
	OutputObject
	OutputArray
	OutputLiteral
)

// OutputField is one key of an object Output.
type OutputField struct {
	Pos   Pos
	Name  string
	Value *Output
}

func (o *Output) fromYAML(d *decoder, n ast.Node) {
	o.Pos = d.pos(n)
	switch n := unwrap(d, n).(type) {
	case *ast.MappingNode:
		o.Kind = OutputObject
		seen := map[string]bool{}
		for _, kv := range n.Values {
			name, ok := keyText(kv.Key)
			if !ok {
				d.errorf(kv.Key, "expected a field name")
				continue
			}
			if seen[name] {
				d.errorf(kv.Key, "duplicate field %q", name)
				continue
			}
			seen[name] = true
			f := &OutputField{Pos: d.pos(kv.Key), Name: name, Value: &Output{}}
			f.Value.fromYAML(d, kv.Value)
			o.Fields = append(o.Fields, f)
		}
	case *ast.SequenceNode:
		o.Kind = OutputArray
		for _, item := range n.Values {
			x := &Output{}
			x.fromYAML(d, item)
			o.Items = append(o.Items, x)
		}
	case *ast.StringNode, *ast.LiteralNode:
		o.Kind = OutputExpr
		o.Expr = &Expr{}
		o.Expr.fromYAML(d, n)
	case *ast.NullNode:
		o.Kind = OutputLiteral
	default:
		o.Kind = OutputLiteral
		o.Literal = d.plain(n)
	}
}

func scalarText(n ast.Node) (string, bool) {
	switch n := n.(type) {
	case *ast.StringNode:
		return n.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		return n.GetToken().Value, true
	}
	return "", false
}
