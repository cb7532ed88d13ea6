package flow

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/spec"
)

// Defaults applied when a flow does not say otherwise.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxBodySize = 1 << 20
	DefaultConcurrency = 4
	DefaultMaxItems    = 1000
)

// Compile turns every flow of the set into a plan. It reports every error of
// every flow (expression types, step references, schemas) as positioned
// spec.Errors; a set with errors yields no plans.
func Compile(set *spec.Set) (map[string]*Plan, error) {
	var errs spec.ErrorList
	plans := map[string]*Plan{}
	for _, name := range set.FlowNames() {
		c := &compiler{set: set, errs: &errs, fl: set.Flows[name], all: map[string]*spec.Step{}}
		if p := c.compile(); p != nil {
			plans[name] = p
		}
	}
	errs.Sort()
	if len(errs) > 0 {
		return nil, errs
	}
	return plans, nil
}

type compiler struct {
	set  *spec.Set
	errs *spec.ErrorList
	fl   *spec.Flow
	plan *Plan
	all  map[string]*spec.Step
	// nodes by step id, to mark those whose body must be decoded
	nodes map[string]*node
	// forward references seen (from → to), and every step's reads, to name cycles
	forward map[[2]string]*spec.Error
	reads   map[string][]string
	sources map[string]bool
	plugins map[string]bool
}

// scope is what a step may read: the ids that finished before it.
type scope struct {
	visible   map[string]bool
	self      string // the step being compiled, for messages
	inForeach bool   // item and index exist
	// concurrent: inside a parallel or foreach, where a failing sibling
	// cancels the step, so its calls must be abortable
	concurrent bool
}

func (s scope) with(ids ...string) scope {
	v := make(map[string]bool, len(s.visible)+len(ids))
	for k := range s.visible {
		v[k] = true
	}
	for _, id := range ids {
		v[id] = true
	}
	s.visible = v
	return s
}

func (c *compiler) errorf(pos spec.Pos, format string, args ...any) {
	*c.errs = append(*c.errs, c.set.Src.Errorf(pos, format, args...))
}

func (c *compiler) compile() *Plan {
	fl := c.fl
	before := len(*c.errs)
	c.plan = &Plan{
		Name: fl.Name, Version: fl.Version, Method: fl.Method, Path: fl.Path,
		Major: spec.Major(fl.Version), Spec: fl,
		Timeout: fl.Timeout.D(), Status: fl.Status, MaxBodySize: int64(fl.MaxBodySize),
	}
	if c.plan.Timeout == 0 {
		c.plan.Timeout = DefaultTimeout
	}
	if c.plan.Status == 0 {
		c.plan.Status = 200
	}
	if c.plan.MaxBodySize == 0 {
		c.plan.MaxBodySize = DefaultMaxBodySize
	}
	c.nodes = map[string]*node{}
	c.forward = map[[2]string]*spec.Error{}
	c.reads = map[string][]string{}
	c.sources = map[string]bool{}
	c.plugins = map[string]bool{}
	collect(fl.Steps, c.all)

	c.plan.input = c.inputSchema(fl)
	root := scope{visible: map[string]bool{}}
	if fl.Legal != nil && fl.Legal.Subject != nil {
		c.plan.Subject = c.expr(fl.Legal.Subject, expr.Any, root)
	}
	var end scope
	c.plan.root, end = c.seq(fl.Steps, root, false)
	if fl.Output != nil {
		end.self = ""
		c.plan.output = c.out(fl.Output, end, true)
	}
	c.plan.headers = c.named(fl.Headers, end)
	for id := range end.visible {
		c.plan.ids = append(c.plan.ids, id)
	}
	sort.Strings(c.plan.ids)
	for s := range c.sources {
		c.plan.Sources = append(c.plan.Sources, s)
	}
	sort.Strings(c.plan.Sources)
	for s := range c.plugins {
		c.plan.Plugins = append(c.plan.Plugins, s)
	}
	sort.Strings(c.plan.Plugins)
	for pair, e := range c.forward {
		if path := c.cycle(pair[1], pair[0], map[string]bool{}); path != nil {
			e = c.set.Src.Errorf(e.Pos, "cyclic dependency: %s; a step can only read steps that finished before it", strings.Join(append([]string{pair[0]}, path...), " → "))
		}
		*c.errs = append(*c.errs, e)
	}
	if len(*c.errs) > before {
		return nil
	}
	return c.plan
}

// collect indexes every step id of a step tree.
func collect(steps []*spec.Step, into map[string]*spec.Step) {
	for _, st := range steps {
		if _, dup := into[st.ID]; !dup {
			into[st.ID] = st
		}
		collect(st.Parallel, into)
		collect(st.Steps, into)
		if st.Switch != nil {
			for _, cs := range st.Switch.Cases {
				collect(cs.Steps, into)
			}
			collect(st.Switch.Default, into)
		}
		if st.Foreach != nil {
			collect(st.Foreach.Steps, into)
		}
	}
}

// seq compiles a sequence; each step sees the ones before it. It returns the
// scope after the sequence (what later steps may read).
func (c *compiler) seq(steps []*spec.Step, sc scope, inForeach bool) ([]*node, scope) {
	nodes := make([]*node, 0, len(steps))
	for _, st := range steps {
		n, produced := c.step(st, sc, inForeach)
		nodes = append(nodes, n)
		sc = sc.with(produced...)
	}
	return nodes, sc
}

// step compiles one step; it returns the ids it makes visible to later steps.
func (c *compiler) step(st *spec.Step, sc scope, inForeach bool) (*node, []string) {
	sc.self = st.ID
	n := &node{id: st.ID, slot: -1, timeout: st.Timeout.D(), optional: st.Optional, cancellable: sc.concurrent}
	if !inForeach {
		n.slot = c.plan.nslots
		c.plan.nslots++
		c.plan.slotIDs = append(c.plan.slotIDs, st.ID)
	}
	c.nodes[st.ID] = n
	if st.When != nil {
		n.when = c.expr(st.When, expr.Bool, sc)
	}
	if st.Default != nil {
		n.def = st.Default.V
	}
	if st.Retry != nil {
		n.retry = newRetry(st.Retry)
	}
	produced := []string{st.ID}
	switch {
	case st.Call != "":
		n.kind = kindCall
		c.call(n, st, sc)
	case st.Parallel != nil:
		n.kind = kindParallel
		c.plan.concurrent = true
		branch := sc
		branch.concurrent = true
		for _, b := range st.Parallel {
			child, ids := c.step(b, branch, inForeach)
			n.children = append(n.children, child)
			produced = append(produced, ids...)
		}
	case st.Steps != nil:
		n.kind = kindSteps
		var end scope
		n.children, end = c.seq(st.Steps, sc, inForeach)
		produced = append(produced, newIDs(sc, end)...)
	case st.Switch != nil:
		n.kind = kindSwitch
		for _, cs := range st.Switch.Cases {
			w := c.expr(cs.When, expr.Bool, sc)
			steps, end := c.seq(cs.Steps, sc, inForeach)
			n.cases = append(n.cases, switchCase{when: w, steps: steps})
			produced = append(produced, newIDs(sc, end)...)
		}
		var end scope
		n.fallback, end = c.seq(st.Switch.Default, sc, inForeach)
		produced = append(produced, newIDs(sc, end)...)
	case st.Foreach != nil:
		n.kind = kindForeach
		fe := st.Foreach
		n.items = c.expr(fe.Items, expr.Any, sc)
		n.concurrency, n.maxItems = fe.Concurrency, fe.MaxItems
		if n.concurrency == 0 {
			n.concurrency = DefaultConcurrency
		}
		if n.maxItems == 0 {
			n.maxItems = DefaultMaxItems
		}
		var end scope
		c.plan.concurrent = true
		inner := sc
		inner.inForeach, inner.concurrent = true, true
		n.children, end = c.seq(fe.Steps, inner, true)
		n.inner = newIDs(sc, end)
		if fe.Output != nil {
			n.iterOut = c.out(fe.Output, end, false)
		} else if k := len(n.children); k > 0 && (n.children[k-1].kind == kindCall || n.children[k-1].kind == kindTransform) {
			n.children[k-1].decode = true // the default output is the last step's body
		}
	case st.Set != nil:
		n.kind = kindSet
		n.set = c.out(st.Set, sc, false)
	case st.Transform != nil:
		n.kind = kindTransform
		c.transform(n, st.Transform, sc)
	case st.Fail != nil:
		n.kind = kindFail
		f := st.Fail
		n.problemType, n.problemStatus, n.problemTitle = f.Type, f.Status, f.Title
		if n.problemStatus == 0 {
			n.problemStatus = spec.ProblemTypes[f.Type]
		}
		if f.Detail != nil {
			n.detail = c.expr(f.Detail, expr.Any, sc)
		}
	}
	return n, produced
}

func newIDs(before, after scope) []string {
	var out []string
	for id := range after.visible {
		if !before.visible[id] {
			out = append(out, id)
		}
	}
	sort.Strings(out)
	return out
}

func (c *compiler) call(n *node, st *spec.Step, sc scope) {
	srcName, opName, _ := strings.Cut(st.Call, ".")
	n.source, n.op = srcName, opName
	c.sources[srcName] = true
	if len(st.AcceptStatus) > 0 {
		n.accept = map[int]bool{}
		for _, s := range st.AcceptStatus {
			n.accept[s] = true
		}
	}
	if st.Subject != nil {
		n.subject = c.expr(st.Subject, expr.Any, sc)
	}
	if st.With == nil {
		return
	}
	n.path = c.named(st.With.Path, sc)
	n.query = c.named(st.With.Query, sc)
	n.headers = c.named(st.With.Headers, sc)
	if st.With.Body != nil {
		n.body = c.out(st.With.Body, sc, false)
	}
}

func (c *compiler) transform(n *node, tr *spec.Transform, sc scope) {
	n.plugin, n.pluginOp = tr.Plugin, tr.Op
	if n.pluginOp == "" {
		n.pluginOp = "transform"
	}
	c.plugins[tr.Plugin] = true
	n.input = c.expr(tr.Input, expr.Any, sc)
	config := map[string]any{}
	if pl := c.set.Plugins[tr.Plugin]; pl != nil && pl.Config != nil {
		if m, ok := pl.Config.V.(map[string]any); ok {
			maps.Copy(config, m)
		}
	}
	if tr.Config != nil {
		if m, ok := tr.Config.V.(map[string]any); ok {
			maps.Copy(config, m)
		}
	}
	n.pluginConfig, _ = json.Marshal(config)
}

func (c *compiler) named(m map[string]*spec.Expr, sc scope) []namedProg {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]namedProg, 0, len(names))
	for _, k := range names {
		if p := c.expr(m[k], expr.Any, sc); p != nil {
			out = append(out, namedProg{name: k, prog: p})
		}
	}
	return out
}

// cycle returns a read path from → … → to, or nil.
func (c *compiler) cycle(from, to string, seen map[string]bool) []string {
	if from == to {
		return []string{to}
	}
	if seen[from] {
		return nil
	}
	seen[from] = true
	for _, next := range c.reads[from] {
		if rest := c.cycle(next, to, seen); rest != nil {
			return append([]string{from}, rest...)
		}
	}
	return nil
}

// expr compiles an expression and checks every steps.X it reads.
func (c *compiler) expr(e *spec.Expr, kind expr.Kind, sc scope) *expr.Program {
	p, err := expr.Compile(e.Src, kind)
	if err != nil {
		var ce *expr.CompileError
		if errors.As(err, &ce) {
			msg := ce.Msg
			if line := c.set.Src[e.Pos.File]; e.Pos.Line <= len(line) && !e.Block && strings.Contains(line[e.Pos.Line-1][max(e.Pos.Col-1, 0):], " #") {
				msg += " (a # after a space starts a YAML comment: quote the expression)"
			}
			c.errorf(e.At(ce.Line, ce.Col), "expression: %s", msg)
		} else {
			c.errorf(e.Pos, "expression: %v", err)
		}
		return nil
	}
	if p.ReadsHeaders {
		c.plan.ReadsHeaders = true
	}
	if p.UsesItem && !sc.inForeach {
		c.errorf(e.Pos, "item and index only exist inside a foreach (its items, steps and output)")
	}
	for _, ref := range p.StepRefs {
		pos := e.At(ref.Line, ref.Col)
		if sc.self != "" {
			c.reads[sc.self] = append(c.reads[sc.self], ref.ID)
		}
		switch {
		case sc.visible[ref.ID]:
			if n := c.nodes[ref.ID]; n != nil {
				n.decode = n.decode || ref.Body
				n.keepHeaders = n.keepHeaders || ref.Headers
			}
		case c.all[ref.ID] == nil:
			c.errorf(pos, "no step %q in flow %q%s", ref.ID, c.fl.Name, hint(ref.ID, c.all))
		case ref.ID == sc.self:
			c.errorf(pos, "step %q reads its own result; a step can only read steps that finished before it", ref.ID)
		default:
			if sc.self == "" {
				c.errorf(pos, "the output reads steps.%s, which only exists inside a foreach; collect it with the foreach's output", ref.ID)
			} else {
				c.forward[[2]string{sc.self, ref.ID}] = c.set.Src.Errorf(pos, "step %q reads steps.%s, which has not finished at that point (it runs later, in a concurrent branch, or inside a foreach)", sc.self, ref.ID)
			}
		}
	}
	return p
}

func hint(id string, all map[string]*spec.Step) string {
	ids := make([]string, 0, len(all))
	for k := range all {
		ids = append(ids, k)
	}
	if best := spec.Closest(id, ids); best != "" {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return ""
}

// out compiles an output tree. top enables the raw-bytes fast path, which
// only the flow's final output uses.
func (c *compiler) out(o *spec.Output, sc scope, top bool) *outNode {
	switch o.Kind {
	case spec.OutputObject:
		n := &outNode{kind: outObject, rawSlot: -1}
		for _, f := range o.Fields {
			key, _ := json.Marshal(f.Name)
			n.fields = append(n.fields, outField{key: append(key, ':'), name: f.Name, val: c.out(f.Value, sc, top)})
		}
		return n
	case spec.OutputArray:
		n := &outNode{kind: outArray, rawSlot: -1}
		for _, it := range o.Items {
			n.items = append(n.items, c.out(it, sc, top))
		}
		return n
	case spec.OutputLiteral:
		b, _ := json.Marshal(o.Literal)
		return &outNode{kind: outLiteral, rawSlot: -1, literal: b, value: o.Literal}
	}
	n := &outNode{kind: outExpr, rawSlot: -1}
	if top {
		// compile without marking decode, then decide
		p, err := expr.Compile(o.Expr.Src, expr.Any)
		if err == nil {
			if id, path, ok := p.BodyPath(); ok && sc.visible[id] {
				if tn := c.nodes[id]; tn != nil && (tn.kind == kindCall || tn.kind == kindTransform) && tn.slot >= 0 {
					n.prog, n.rawSlot, n.rawPath = p, tn.slot, path
					return n
				}
			}
		}
	}
	n.prog = c.expr(o.Expr, expr.Any, sc)
	return n
}

func newRetry(r *spec.Retry) *retryPolicy {
	p := &retryPolicy{attempts: r.Attempts, backoff: r.Backoff.D(), maxBackoff: r.MaxBackoff.D(), onStatus: map[int]bool{}}
	if p.backoff == 0 {
		p.backoff = 100 * time.Millisecond
	}
	if p.maxBackoff == 0 {
		p.maxBackoff = 2 * time.Second
	}
	statuses := r.OnStatus
	if len(statuses) == 0 {
		statuses = []int{502, 503, 504}
	}
	for _, s := range statuses {
		p.onStatus[s] = true
	}
	return p
}
