package flow

import "github.com/openfsb/fsb/engine/expr"

// Outline is a read-only view of a compiled plan's steps, for what draws or
// documents a flow (the catalogue's diagram). It copies out of the plan:
// changing it changes nothing that runs.
type Outline struct {
	ID       string
	Kind     string // call, parallel, steps, switch, foreach, set, fail, transform
	When     string // the condition's source text; "" when the step always runs
	Optional bool
	// Call: the source and operation called.
	Source, Operation string
	// Transform: the plugin and operation run.
	Plugin, PluginOp string
	// Fail: the problem type and status.
	Problem       string
	ProblemStatus int
	// Foreach: the items expression and the concurrency.
	Items       string
	Concurrency int
	// Children: a parallel's branches, a group's or a foreach's steps.
	Children []Outline
	// Switch: its cases, then the default steps (Default).
	Cases   []OutlineCase
	Default []Outline
}

// OutlineCase is one case of a switch.
type OutlineCase struct {
	When  string
	Steps []Outline
}

var kindNames = [...]string{
	kindCall: "call", kindParallel: "parallel", kindSteps: "steps", kindSwitch: "switch",
	kindForeach: "foreach", kindSet: "set", kindFail: "fail", kindTransform: "transform",
}

// Outline returns the plan's top-level steps in order.
func (p *Plan) Outline() []Outline { return outline(p.root) }

func outline(nodes []*node) []Outline {
	if len(nodes) == 0 {
		return nil
	}
	out := make([]Outline, 0, len(nodes))
	for _, n := range nodes {
		o := Outline{ID: n.id, Kind: kindNames[n.kind], When: source(n.when), Optional: n.optional}
		switch n.kind {
		case kindCall:
			o.Source, o.Operation = n.source, n.op
		case kindTransform:
			o.Plugin, o.PluginOp = n.plugin, n.pluginOp
		case kindFail:
			o.Problem, o.ProblemStatus = n.problemType, n.problemStatus
		case kindForeach:
			o.Items, o.Concurrency = source(n.items), n.concurrency
		case kindSwitch:
			for _, c := range n.cases {
				o.Cases = append(o.Cases, OutlineCase{When: source(c.when), Steps: outline(c.steps)})
			}
			o.Default = outline(n.fallback)
		}
		o.Children = outline(n.children)
		out = append(out, o)
	}
	return out
}

func source(p *expr.Program) string {
	if p == nil {
		return ""
	}
	return p.Source()
}
