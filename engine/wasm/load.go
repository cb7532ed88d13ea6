package wasm

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// ABIVersion is the plugin ABI this host implements (sdk/ABI.md).
const ABIVersion = 1

// pageSize is the size of a WebAssembly memory page.
const pageSize = 64 << 10

// Defaults of ABI.md for a zero Limits field, and of the pool.
const (
	DefaultMaxMemory    = 16 << 20
	DefaultTimeout      = 100 * time.Millisecond
	DefaultMaxInput     = 256 << 10
	DefaultMaxOutput    = 1 << 20
	DefaultRecycleCalls = 10_000
	DefaultGrowth       = 4.0
)

// Capabilities a module may be granted (ABI.md, "The sandbox").
const (
	CapClock  = "clock"  // real wall and monotonic time
	CapRandom = "random" // cryptographic randomness
)

// ModuleSpec declares one module to Load.
type ModuleSpec struct {
	Name   string // the plugin name, used in every error and log line
	Wasm   []byte
	Digest string // hex SHA-256 of Wasm; Load refuses the module when it differs
	Trust  Trust
	Limits Limits
	// Capabilities granted beyond the sandbox: only CapClock and CapRandom.
	Capabilities []string
	// Operations the caller will call. Each must be exported with the
	// operation signature, else Load says which is wrong. Optional: a
	// module must export at least one operation anyway.
	Operations []string
	// PoolSize bounds the live instances (default runtime.GOMAXPROCS(0)).
	// Calls beyond it wait for a free instance, within their context.
	PoolSize int
	Recycle  Recycle
}

// Limits bound each call; a zero field takes the ABI.md default.
type Limits struct {
	MaxMemory int // bytes of linear memory an instance may have (whole 64 KiB pages count)
	Timeout   time.Duration
	MaxInput  int
	MaxOutput int
}

// Recycle says when a healthy instance is replaced by a fresh one, so that
// state a guest leaks between calls stays bounded.
type Recycle struct {
	Calls  int     // after this many calls (default 10,000)
	Growth float64 // when its memory exceeds Growth × its size after start (default 4)
}

// Load verifies a module, instruments it when untrusted, compiles it (once
// per digest and trust level) and checks it, then runs abi_version on a
// first instance, which becomes the first of the pool. Errors about the module wrap ErrRefused and name the module
// and every problem found.
func (h *Host) Load(ctx context.Context, spec ModuleSpec) (*Module, error) {
	m, problems := newModule(h, spec)
	if len(problems) > 0 {
		return nil, refuse(spec.Name, problems...)
	}
	s, err := h.sandboxFor(ctx)
	if err != nil {
		return nil, fmt.Errorf("wasm module %q: %w", spec.Name, err)
	}
	m.sandbox = s
	bin := spec.Wasm
	if m.trust == Untrusted {
		if bin, err = instrument(bin); err != nil {
			return nil, refuse(spec.Name, "does not compile: "+err.Error())
		}
	}
	c, err := h.compile(ctx, s, m.key(), bin)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("wasm module %q: %w", spec.Name, err)
		}
		return nil, refuse(spec.Name, "does not compile: "+firstLine(err))
	}
	m.compiled = c
	if problems := m.check(c.cm); len(problems) > 0 {
		h.release(m.key(), c)
		return nil, refuse(spec.Name, problems...)
	}

	// The probe instance: start functions run, abi_version answers.
	inst, err := m.instantiate(ctx)
	if err != nil {
		h.release(m.key(), c)
		return nil, refuse(spec.Name, "cannot be instantiated: "+err.Error())
	}
	version, verr := inst.abiVersion(ctx, m)
	problem := ""
	switch {
	case verr != nil:
		problem = fmt.Sprintf("abi_version %v: %s", verr.Kind, verr.Detail)
	case version != ABIVersion:
		problem = fmt.Sprintf("abi_version returned %d, this host supports %d", version, ABIVersion)
	}
	if problem != "" {
		inst.close()
		h.release(m.key(), c)
		return nil, refuse(spec.Name, problem)
	}
	m.idle = append(m.idle, inst)
	m.live, m.peak = 1, 1

	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = m.Close(ctx)
		return nil, fmt.Errorf("wasm module %q: host %w", spec.Name, ErrClosed)
	}
	h.modules[m] = struct{}{}
	h.mu.Unlock()
	return m, nil
}

// newModule applies defaults and checks the spec itself (not the bytes).
func newModule(h *Host, spec ModuleSpec) (*Module, []string) {
	var problems []string
	if spec.Name == "" {
		problems = append(problems, "no name")
	}
	lim := spec.Limits
	def := func(v *int, d int, what string, most int64) {
		switch {
		case *v == 0:
			*v = d
		case *v < 0 || int64(*v) > most:
			problems = append(problems, fmt.Sprintf("%s %d out of range 1..%d", what, *v, most))
		}
	}
	def(&lim.MaxMemory, DefaultMaxMemory, "maxMemory", 1<<32)
	def(&lim.MaxInput, DefaultMaxInput, "maxInput", math.MaxInt32)
	def(&lim.MaxOutput, DefaultMaxOutput, "maxOutput", math.MaxInt32)
	if lim.MaxMemory > 0 && lim.MaxMemory < pageSize {
		problems = append(problems, fmt.Sprintf("maxMemory %d is below one 64 KiB page", lim.MaxMemory))
	}
	switch {
	case lim.Timeout == 0:
		lim.Timeout = DefaultTimeout
	case lim.Timeout < 0:
		problems = append(problems, fmt.Sprintf("negative timeout %v", lim.Timeout))
	}
	if spec.Trust != Untrusted && spec.Trust != Trusted {
		problems = append(problems, fmt.Sprintf("unknown trust level %d", int(spec.Trust)))
	}
	pool := spec.PoolSize
	def(&pool, runtime.GOMAXPROCS(0), "poolSize", 1<<16)
	rec := spec.Recycle
	def(&rec.Calls, DefaultRecycleCalls, "recycle calls", math.MaxInt32)
	switch {
	case rec.Growth == 0:
		rec.Growth = DefaultGrowth
	case !(rec.Growth >= 1): // also NaN
		problems = append(problems, fmt.Sprintf("recycle growth %v below 1", rec.Growth))
	}

	cfg := wazero.NewModuleConfig().
		WithName(""). // anonymous: many instances per runtime, whatever the name section says
		WithStdout(io.Discard)
	for _, c := range spec.Capabilities {
		switch c {
		case CapClock:
			cfg = cfg.WithSysWalltime().WithSysNanotime()
		case CapRandom:
			cfg = cfg.WithRandSource(rand.Reader)
		default:
			problems = append(problems, fmt.Sprintf("unknown capability %q (only %q and %q can be granted)", c, CapClock, CapRandom))
		}
	}

	digest := strings.ToLower(spec.Digest)
	sum := sha256.Sum256(spec.Wasm)
	actual := hex.EncodeToString(sum[:])
	switch {
	case spec.Digest == "":
		problems = append(problems, "no digest: the declaration must give the module's sha256 ("+actual+")")
	case digest != actual:
		problems = append(problems, fmt.Sprintf("digest mismatch: declared sha256 %s, the module's is %s", spec.Digest, actual))
	}

	m := &Module{
		host:      h,
		name:      spec.Name,
		digest:    actual,
		trust:     spec.Trust,
		limits:    lim,
		recycle:   rec,
		opsWanted: spec.Operations,
		modCfg:    cfg,
		memLimit:  uint64(lim.MaxMemory) / pageSize * pageSize,
		sem:       make(chan struct{}, max(pool, 1)),
		done:      make(chan struct{}),
		drained:   make(chan struct{}),
	}
	return m, problems
}

// check verifies the exports and imports against ABI.md and the sandbox.
func (m *Module) check(cm wazero.CompiledModule) []string {
	var problems []string
	fns := cm.ExportedFunctions()

	mems := cm.ExportedMemories()
	if mem, ok := mems["memory"]; !ok {
		problems = append(problems, `missing export "memory" (a memory)`)
	} else if uint64(mem.Min())*pageSize > m.memLimit {
		problems = append(problems, fmt.Sprintf("memory starts at %d pages (%s), above maxMemory %s",
			mem.Min(), sizeOf(uint64(mem.Min())*pageSize), sizeOf(m.memLimit)))
	}
	for _, mem := range cm.ImportedMemories() {
		mod, name, _ := mem.Import()
		problems = append(problems, fmt.Sprintf("imports memory %s.%s: the sandbox offers none", mod, name))
	}

	want := func(name string, sig signature) {
		fn, ok := fns[name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("missing export %q %s", name, sig))
		case !sig.matches(fn):
			problems = append(problems, fmt.Sprintf("export %q has type %s, want %s", name, typeOf(fn), sig))
		}
	}
	want("abi_version", sigABIVersion)
	want("alloc", sigAlloc)
	want("free", sigFree)
	if _, ok := fns["_start"]; ok && fns["_initialize"] == nil {
		problems = append(problems, "exports _start: it is a WASI command, not a reactor (a Go plugin must be built with -buildmode=c-shared; fsb plugin build does)")
	}
	if _, ok := fns["_initialize"]; ok {
		want("_initialize", sigInitialize)
		m.modCfg = m.modCfg.WithStartFunctions("_initialize")
	} else {
		m.modCfg = m.modCfg.WithStartFunctions()
	}
	for _, op := range m.opsWanted {
		want(op, sigOperation)
	}

	var others []string
	for name, fn := range fns {
		switch {
		case reserved[name]:
		case sigOperation.matches(fn):
			m.ops = append(m.ops, name)
		default:
			others = append(others, fmt.Sprintf("%q has type %s", name, typeOf(fn)))
		}
	}
	slices.Sort(m.ops)
	if len(m.ops) == 0 && len(m.opsWanted) == 0 {
		p := "exports no operation (a function " + sigOperation.String() + ")"
		if len(others) > 0 {
			slices.Sort(others)
			p += "; " + strings.Join(others, ", ")
		}
		problems = append(problems, p)
	}

	for _, fn := range cm.ImportedFunctions() {
		mod, name, _ := fn.Import()
		if mod == interruptModule && m.trust == Untrusted { // instrument added it
			continue
		}
		offered, ok := m.sandbox.offered[mod][name]
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("imports a function the sandbox does not offer: %s.%s", mod, name))
		case !sameType(fn, offered):
			problems = append(problems, fmt.Sprintf("imports %s.%s with type %s, the sandbox offers %s", mod, name, typeOf(fn), typeOf(offered)))
		}
	}
	return problems
}

// reserved names the ABI exports that are not operations.
var reserved = map[string]bool{"abi_version": true, "alloc": true, "free": true, "_initialize": true}

// signature is a function type of the ABI.
type signature struct{ params, results []api.ValueType }

var (
	sigABIVersion = signature{nil, []api.ValueType{i32}}
	sigAlloc      = signature{[]api.ValueType{i32}, []api.ValueType{i32}}
	sigFree       = signature{[]api.ValueType{i32, i32}, nil}
	sigOperation  = signature{[]api.ValueType{i32, i32}, []api.ValueType{i64}}
	sigInitialize = signature{}
)

func (s signature) matches(fn api.FunctionDefinition) bool {
	return bytes.Equal(s.params, fn.ParamTypes()) && bytes.Equal(s.results, fn.ResultTypes())
}

func (s signature) String() string { return formatType(s.params, s.results) }

func sameType(a, b api.FunctionDefinition) bool {
	return bytes.Equal(a.ParamTypes(), b.ParamTypes()) && bytes.Equal(a.ResultTypes(), b.ResultTypes())
}

func typeOf(fn api.FunctionDefinition) string { return formatType(fn.ParamTypes(), fn.ResultTypes()) }

// formatType writes a function type as "(i32, i32) -> i64".
func formatType(params, results []api.ValueType) string {
	list := func(ts []api.ValueType) string {
		names := make([]string, len(ts))
		for i, t := range ts {
			names[i] = api.ValueTypeName(t)
		}
		return strings.Join(names, ", ")
	}
	res := "(" + list(results) + ")"
	if len(results) == 1 {
		res = list(results)
	}
	return "(" + list(params) + ") -> " + res
}

// sizeOf writes a byte count the way limits are written: "16 MiB", "1.5 MiB".
func sizeOf(n uint64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
