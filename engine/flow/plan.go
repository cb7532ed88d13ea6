package flow

import (
	"sync"
	"time"

	"github.com/openfsb/fsb/engine/expr"
	"github.com/openfsb/fsb/engine/spec"
)

// Plan is a compiled flow: immutable, shared by all requests.
type Plan struct {
	Name, Version, Method, Path string
	Major                       int
	Spec                        *spec.Flow
	Timeout                     time.Duration
	Status                      int
	MaxBodySize                 int64
	Sources                     []string // sources the flow calls, sorted
	Plugins                     []string // plugins the flow runs, sorted
	Subject                     *expr.Program
	ReadsHeaders                bool // some expression reads input.headers

	input   *inputSchema
	headers []namedProg // response headers, set on success
	root    []*node
	output  *outNode
	ids     []string // every step id visible in the top-level environment
	nslots  int
	runs    sync.Pool // of *run

	// concurrent: the plan has parallel or foreach steps, whose failures
	// cancel their siblings (otherwise only deadlines end a call)
	concurrent bool
	slotIDs    []string // step id by slot
}

type nodeKind int

const (
	kindCall nodeKind = iota
	kindParallel
	kindSteps
	kindSwitch
	kindForeach
	kindSet
	kindFail
	kindTransform
)

type node struct {
	id          string
	kind        nodeKind
	slot        int  // index into run.raw; -1 inside a foreach
	decode      bool // decode the call's body: some expression reads into it
	cancellable bool // inside a parallel or foreach: a sibling's failure cancels it
	keepHeaders bool // keep the call's response headers: some expression reads them
	when        *expr.Program
	timeout     time.Duration
	retry       *retryPolicy
	optional    bool
	def         any

	// call
	source, op string
	path       []namedProg
	query      []namedProg
	headers    []namedProg
	body       *outNode
	accept     map[int]bool
	subject    *expr.Program // whom the call consults, if not the flow's subject

	children []*node // parallel, steps

	cases    []switchCase
	fallback []*node

	items       *expr.Program
	concurrency int
	maxItems    int
	iterOut     *outNode
	inner       []string // step ids local to one foreach iteration

	set *outNode

	plugin, pluginOp string
	input            *expr.Program
	pluginConfig     []byte // JSON: the plugin's config with the step's over it

	problemType   string
	problemStatus int
	problemTitle  string
	detail        *expr.Program
}

type namedProg struct {
	name string
	prog *expr.Program
}

type switchCase struct {
	when  *expr.Program
	steps []*node
}

type retryPolicy struct {
	attempts            int
	backoff, maxBackoff time.Duration
	onStatus            map[int]bool
}

type outKind int

const (
	outExpr outKind = iota
	outObject
	outArray
	outLiteral
)

// outNode builds a JSON value from expressions.
type outNode struct {
	kind    outKind
	prog    *expr.Program
	rawSlot int // >= 0: copy raw bytes of that call's body, at rawPath
	rawPath []string
	fields  []outField
	items   []*outNode
	literal []byte // encoded literal
	value   any    // literal as a value
}

type outField struct {
	key  []byte // encoded "name":
	name string
	val  *outNode
}
