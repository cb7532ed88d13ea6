package expr

import (
	"fmt"
	"regexp"
	"strings"

	exprlang "github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"

	"github.com/openfsb/fsb/engine/spec"
)

// Env is what every expression can read. Its shape is checked at compile
// time: a misspelt field (input.bdy, steps.x.stauts) is a load error.
type Env struct {
	Input    Input              `expr:"input"`
	Steps    map[string]*Result `expr:"steps"`
	Consumer Consumer           `expr:"consumer"`
	// Item and Index are the current element inside a foreach.
	Item  any `expr:"item"`
	Index int `expr:"index"`
}

// Input is the consumer's request after validation.
type Input struct {
	Body  map[string]any `expr:"body"`
	Query map[string]any `expr:"query"`
	Path  map[string]any `expr:"path"`
	// Headers are the request headers in canonical form (Accept-Language),
	// without credentials (Authorization, Cookie, Proxy-Authorization).
	Headers map[string]any `expr:"headers"`
}

// Result is what a step produced. A step that did not run (its when was
// false, or its switch branch was not taken) has Skipped true and no body.
type Result struct {
	Body    any            `expr:"body"`
	Status  int            `expr:"status"`
	Headers map[string]any `expr:"headers"` // a missing header reads as nil
	OK      bool           `expr:"ok"`
	Skipped bool           `expr:"skipped"`
	Error   string         `expr:"error"`
	TraceID string         `expr:"traceId"`
}

// Consumer is who calls and why; filled by the access layer.
type Consumer struct {
	Organisation string `expr:"organisation"`
	Application  string `expr:"application"`
	Purpose      string `expr:"purpose"`
	EndUser      string `expr:"endUser"`
}

// Program is a compiled, type-checked expression, safe for concurrent use.
type Program struct {
	prog *vm.Program
	src  string
	// StepRefs lists the step ids the expression reads (steps.X).
	StepRefs []StepRef
	// UsesItem is true when the expression reads item or index, which only
	// exist inside a foreach.
	UsesItem bool
	// ReadsHeaders is true when the expression reads input.headers.
	ReadsHeaders bool
	// chain is set when the whole expression is a plain member chain
	// (input.path.id, steps.x.body.a): Run then walks maps without the VM.
	chain []string
}

// StepRef is one steps.X access, with where it occurs in the expression.
type StepRef struct {
	ID        string
	Line, Col int // 1-based, within the expression text
	// Body is true unless the access only reads a field other than body
	// (status, ok, headers …): the executor must decode that step's body.
	Body bool
	// Headers is true unless the access only reads a field other than
	// headers: the executor must keep that step's response headers.
	Headers bool
}

// CompileError is a compile failure with its place in the expression text.
type CompileError struct {
	Line, Col int // 1-based
	Msg       string
}

func (e *CompileError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// Kind says what type an expression must produce.
type Kind int

// The kinds an expression can be compiled as.
const (
	Any Kind = iota
	Bool
)

var baseOptions = func() []exprlang.Option {
	opts := []exprlang.Option{exprlang.Env(&Env{})}
	return append(opts, BelgianFunctions()...)
}()

// Compile type-checks src against Env.
func Compile(src string, kind Kind) (*Program, error) {
	opts := baseOptions
	if kind == Bool {
		opts = append(opts[:len(opts):len(opts)], exprlang.AsBool())
	}
	prog, err := exprlang.Compile(src, opts...)
	if err != nil {
		return nil, compileError(err)
	}
	p := &Program{prog: prog, src: src}
	v := &refVisitor{parent: map[*ast.MemberNode]string{}}
	node := prog.Node()
	ast.Walk(&node, v)
	p.UsesItem, p.ReadsHeaders = v.item, v.headers
	for i, m := range v.nodes {
		prop, read := v.parent[m]
		v.refs[i].Body = !read || prop == "body"
		v.refs[i].Headers = !read || prop == "headers"
		v.refs[i].Line, v.refs[i].Col = lineCol(src, m.Location().From)
	}
	p.StepRefs = v.refs
	p.chain = memberChain(node)
	return p, nil
}

// memberChain returns [root, names…] for input.a.b / steps.x.y.z, else nil.
func memberChain(node ast.Node) []string {
	var rev []string
	for {
		switch n := node.(type) {
		case *ast.MemberNode:
			s, ok := n.Property.(*ast.StringNode)
			if !ok || n.Method || n.Optional {
				return nil
			}
			rev = append(rev, s.Value)
			node = n.Node
			continue
		case *ast.IdentifierNode:
			if n.Value != "input" && n.Value != "steps" || len(rev) < 2 {
				return nil
			}
			rev = append(rev, n.Value)
			out := make([]string, len(rev))
			for i, x := range rev {
				out[len(rev)-1-i] = x
			}
			return out
		}
		return nil
	}
}

// walk evaluates a member chain; ok is false when the VM must decide
// (a nil or non-map on the way, whose error the VM reports).
func walk(chain []string, env *Env) (any, bool) {
	var cur any
	rest := chain[2:]
	switch chain[0] {
	case "input":
		switch chain[1] {
		case "body":
			cur = env.Input.Body
		case "query":
			cur = env.Input.Query
		case "path":
			cur = env.Input.Path
		case "headers":
			cur = env.Input.Headers
		default:
			return nil, false
		}
	case "steps":
		r := env.Steps[chain[1]]
		if r == nil || len(rest) == 0 {
			return nil, false
		}
		switch rest[0] {
		case "body":
			cur = r.Body
		case "headers":
			cur = r.Headers
		default:
			return nil, false
		}
		rest = rest[1:]
	}
	for _, name := range rest {
		m, ok := cur.(map[string]any)
		if !ok || m == nil {
			return nil, false
		}
		cur = m[name]
	}
	return cur, true
}

func compileError(err error) error {
	if fe, ok := err.(*file.Error); ok {
		return &CompileError{Line: fe.Line, Col: fe.Column + 1, Msg: friendly(fe.Message)}
	}
	return &CompileError{Line: 1, Col: 1, Msg: friendly(err.Error())}
}

// envNames maps the Go types of the environment to what flow authors write,
// with the fields each offers, so messages speak the flow language.
var envNames = []struct {
	goType, name string
	fields       []string
}{
	{"expr.Input", "input", []string{"body", "query", "path", "headers"}},
	{"*expr.Result", "a step result", []string{"body", "status", "headers", "ok", "skipped", "error", "traceId"}},
	{"expr.Consumer", "consumer", []string{"organisation", "application", "purpose", "endUser"}},
	{"*expr.Env", "the environment", []string{"input", "steps", "consumer", "item", "index"}},
}

var noField = regexp.MustCompile(`^type (\S+) has no field (\S+)$`)

// friendly rewrites expr's messages about our Go types into flow terms.
func friendly(msg string) string {
	if m := noField.FindStringSubmatch(msg); m != nil {
		for _, e := range envNames {
			if m[1] == e.goType || m[1] == strings.TrimPrefix(e.goType, "*") {
				return fmt.Sprintf("%s has no field %q%s; it has %s", e.name, m[2], closest(m[2], e.fields), strings.Join(e.fields, ", "))
			}
		}
	}
	if strings.HasPrefix(msg, "unknown name ") {
		name := strings.TrimSuffix(strings.TrimPrefix(msg, "unknown name "), " ")
		return fmt.Sprintf("unknown name %s%s; expressions start from input, steps, consumer (and item, index inside a foreach)", name, closest(name, envNames[3].fields))
	}
	for _, e := range envNames {
		msg = strings.ReplaceAll(msg, e.goType, e.name)
	}
	return msg
}

func closest(name string, known []string) string {
	if best := spec.Closest(name, known); best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	return ""
}

// Run evaluates the program.
func (p *Program) Run(env *Env) (any, error) {
	if p.chain != nil {
		if v, ok := walk(p.chain, env); ok {
			return v, nil
		}
	}
	return exprlang.Run(p.prog, env)
}

// Source returns the expression text.
func (p *Program) Source() string { return p.src }

// BodyPath reports whether the whole expression is a plain read of a step's
// body or of a constant path inside it (steps.x.body, steps.x.body.a.b), so
// that the caller can copy raw bytes instead of decoding and re-encoding.
func (p *Program) BodyPath() (step string, path []string, ok bool) {
	node := p.prog.Node()
	var chain []string
	for {
		switch n := node.(type) {
		case *ast.MemberNode:
			s, isStr := n.Property.(*ast.StringNode)
			if !isStr || n.Method {
				return "", nil, false
			}
			chain = append(chain, s.Value)
			node = n.Node
			continue
		case *ast.ChainNode:
			node = n.Node
			continue
		case *ast.IdentifierNode:
			if n.Value != "steps" {
				return "", nil, false
			}
		default:
			return "", nil, false
		}
		break
	}
	// chain is reversed: [... "body", id]
	if len(chain) < 2 || chain[len(chain)-2] != "body" {
		return "", nil, false
	}
	for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
		chain[i], chain[j] = chain[j], chain[i]
	}
	return chain[0], chain[2:], true
}

// refVisitor finds every steps.X access and which member of it is read.
type refVisitor struct {
	refs    []StepRef
	nodes   []*ast.MemberNode
	parent  map[*ast.MemberNode]string // steps.X node → the member read from it
	item    bool
	headers bool
}

func stepsMember(n ast.Node) (*ast.MemberNode, string, bool) {
	m, ok := n.(*ast.MemberNode)
	if !ok {
		return nil, "", false
	}
	id, ok := m.Node.(*ast.IdentifierNode)
	if !ok || id.Value != "steps" {
		return nil, "", false
	}
	name, ok := m.Property.(*ast.StringNode)
	return m, name.Value, ok
}

func (v *refVisitor) Visit(node *ast.Node) {
	if id, ok := (*node).(*ast.IdentifierNode); ok && (id.Value == "item" || id.Value == "index") {
		v.item = true
	}
	if m, id, ok := stepsMember(*node); ok {
		v.nodes = append(v.nodes, m)
		v.refs = append(v.refs, StepRef{ID: id})
		return
	}
	m, ok := (*node).(*ast.MemberNode)
	if !ok {
		return
	}
	if id, isID := m.Node.(*ast.IdentifierNode); isID && id.Value == "input" {
		if prop, isStr := m.Property.(*ast.StringNode); !isStr || prop.Value == "headers" {
			v.headers = true
		}
	}
	inner := m.Node
	if c, isChain := inner.(*ast.ChainNode); isChain {
		inner = c.Node
	}
	if sm, _, ok := stepsMember(inner); ok {
		if prop, isStr := m.Property.(*ast.StringNode); isStr {
			v.parent[sm] = prop.Value
		}
	}
}

// lineCol turns a rune offset into a 1-based line and column.
func lineCol(src string, offset int) (int, int) {
	line, col := 1, 1
	for i, r := range []rune(src) {
		if i >= offset {
			break
		}
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return line, col
}
