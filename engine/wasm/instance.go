package wasm

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

const (
	// maxStderr bounds what one instance keeps of its stderr between logs.
	maxStderr = 4 << 10
	// maxGuestMessage bounds the failure message kept for the log.
	maxGuestMessage = 4 << 10
	// minStartTimeout bounds instantiation (start functions included) of an
	// untrusted module when its call timeout is shorter: a Go guest's
	// runtime takes milliseconds to start.
	minStartTimeout = time.Second
)

// instance is one instantiated module. It serves one call at a time and is
// owned by whichever goroutine took it from the pool.
type instance struct {
	mod         api.Module
	mem         api.Memory
	lin         *linearMemory
	alloc, free api.Function
	ops         map[string]api.Function
	stack       [2]uint64 // parameters and results of every guest call
	stderr      stderrBuffer
	state       callState
	calls       int
	initial     uint32 // memory size once started

}

// instantiate creates an instance. Its memory is allocated by linearMemory,
// which enforces the module's limit and notices when the guest hits it.
func (m *Module) instantiate(ctx context.Context) (*instance, error) {
	inst := &instance{lin: &linearMemory{limit: m.memLimit}}
	inst.state.module = m
	ictx := experimental.WithMemoryAllocator(ctx, inst.lin)
	ictx = context.WithValue(ictx, stateKey{}, &inst.state)
	start := max(m.limits.Timeout, minStartTimeout)
	m.arm(ictx, &inst.state, start)
	mod, err := m.sandbox.r.InstantiateModule(ictx, m.compiled.cm, m.modCfg.WithStderr(&inst.stderr))
	if err != nil {
		m.logStderr(ctx, inst, "_initialize", true) // a Go guest's init panic is only there
		switch inst.state.stopped {
		case stoppedTimeout:
			return nil, fmt.Errorf("_initialize still running after %v", start)
		case stoppedCancel:
			return nil, fmt.Errorf("_initialize: %w", context.Canceled)
		}
		return nil, errors.New(firstLine(err))
	}
	if mod.IsClosed() { // proc_exit(0) in _initialize
		return nil, errors.New("the module exited while starting")
	}
	inst.mod = mod
	inst.mem = mod.ExportedMemory("memory")
	inst.alloc = mod.ExportedFunction("alloc")
	inst.free = mod.ExportedFunction("free")
	inst.ops = make(map[string]api.Function, len(m.ops))
	for _, op := range m.ops {
		inst.ops[op] = mod.ExportedFunction(op)
	}
	inst.initial = inst.mem.Size()
	m.instantiations.Add(1)
	return inst, nil
}

// abiVersion calls abi_version once, within the module's timeout.
func (inst *instance) abiVersion(ctx context.Context, m *Module) (int32, *Error) {
	m.arm(ctx, &inst.state, m.limits.Timeout)
	ctx = context.WithValue(ctx, stateKey{}, &inst.state)
	if err := inst.mod.ExportedFunction("abi_version").CallWithStack(ctx, inst.stack[:]); err != nil {
		return 0, m.failure(inst, "abi_version", "abi_version", err)
	}
	return int32(uint32(inst.stack[0])), nil
}

// call runs one operation through the ABI: alloc and write the input, call
// the operation, check and copy the output, free it (sdk/ABI.md, "One call").
func (inst *instance) call(ctx context.Context, m *Module, op string, input []byte) ([]byte, *Error) {
	stack := inst.stack[:]
	n := uint32(len(input)) // fits: MaxInput <= MaxInt32

	var ptr uint32 // an empty input is passed as (0, 0) without alloc (ABI.md)
	if n > 0 {
		stack[0] = uint64(n)
		if err := inst.alloc.CallWithStack(ctx, stack); err != nil {
			return nil, m.failure(inst, op, "alloc", err)
		}
		ptr = uint32(stack[0])
		if ptr == 0 {
			if inst.lin.refused {
				return nil, m.fail(op, ErrMemory, fmt.Sprintf("alloc(%d) failed: memory limit of %s reached", n, sizeOf(m.memLimit)), nil)
			}
			return nil, m.fail(op, ErrMemory, fmt.Sprintf("alloc(%d) returned 0", n), nil)
		}
		if !inst.mem.Write(ptr, input) {
			return nil, m.fail(op, ErrBadOutput, fmt.Sprintf("alloc(%d) returned %#x, outside the %d-byte memory", n, ptr, inst.mem.Size()), nil)
		}
	}

	stack[0], stack[1] = uint64(ptr), uint64(n)
	if err := inst.ops[op].CallWithStack(ctx, stack); err != nil {
		return nil, m.failure(inst, op, op, err)
	}
	res := stack[0]
	outPtr, outLen, failed := uint32(res>>32), uint32(res)&0x7fff_ffff, res&(1<<31) != 0

	what := "output"
	if failed {
		what = "failure message"
	}
	// A failure message counts against maxOutput like any output (ABI.md).
	if uint64(outLen) > uint64(m.limits.MaxOutput) {
		return nil, m.fail(op, ErrTooLarge, fmt.Sprintf("%s of %d bytes exceeds maxOutput %d", what, outLen, m.limits.MaxOutput), nil)
	}
	view, ok := inst.mem.Read(outPtr, outLen)
	if !ok {
		return nil, m.fail(op, ErrBadOutput, fmt.Sprintf("%s at %#x (%d bytes) lies outside the %d-byte memory", what, outPtr, outLen, inst.mem.Size()), nil)
	}
	if failed {
		// Not freed: the instance is discarded anyway.
		e := m.fail(op, ErrGuest, "", nil)
		e.Message = string(view[:min(outLen, maxGuestMessage)]) // copies out of guest memory
		if e.Message == "" {
			e.Detail = "without a message"
		}
		return nil, e
	}
	// The view goes stale when the guest grows its memory: copy before free.
	out := make([]byte, outLen)
	copy(out, view)
	if outLen > 0 {
		stack[0], stack[1] = uint64(outPtr), uint64(outLen)
		if err := inst.free.CallWithStack(ctx, stack); err != nil {
			return nil, m.failure(inst, op, "free", err)
		}
	}
	return out, nil
}

func (inst *instance) close() {
	_ = inst.mod.Close(context.Background())
}

// linearMemory backs an instance's memory (wazero's experimental allocator
// hook). It refuses to grow past the module's limit and remembers that it
// did, so a trap that follows is reported as ErrMemory. See RATIONALE.md.
type linearMemory struct {
	buf     []byte
	limit   uint64
	refused bool // a grow was refused during the current call
}

var _ experimental.MemoryAllocator = (*linearMemory)(nil)
var _ experimental.LinearMemory = (*linearMemory)(nil)

// Allocate implements experimental.MemoryAllocator; an instance has one memory.
func (l *linearMemory) Allocate(capacity, _ uint64) experimental.LinearMemory {
	l.buf = make([]byte, 0, min(capacity, l.limit))
	return l
}

// Reallocate implements experimental.LinearMemory. wazero only grows
// memory, so bytes past the old length were never exposed and are still
// zero, as new pages must be.
func (l *linearMemory) Reallocate(size uint64) []byte {
	if size > l.limit {
		l.refused = true
		return nil
	}
	if size <= uint64(cap(l.buf)) {
		l.buf = l.buf[:size]
		return l.buf
	}
	// Double the capacity (within the limit) so a guest growing page by
	// page does not copy its memory once per page.
	nb := make([]byte, size, max(size, min(2*uint64(cap(l.buf)), l.limit)))
	copy(nb, l.buf)
	l.buf = nb
	return nb
}

// Free implements experimental.LinearMemory.
func (l *linearMemory) Free() { l.buf = nil }

// stderrBuffer keeps the first maxStderr bytes a guest writes to stderr and
// drops the rest. Writes never fail, so the guest never sees the limit.
type stderrBuffer struct {
	buf       []byte
	truncated bool
}

func (b *stderrBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if room := maxStderr - len(b.buf); n > room {
		p, b.truncated = p[:room], true
	}
	b.buf = append(b.buf, p...)
	return n, nil
}

func (b *stderrBuffer) empty() bool { return len(b.buf) == 0 && !b.truncated }

func (b *stderrBuffer) take() (string, bool) {
	s, t := string(b.buf), b.truncated
	b.buf, b.truncated = b.buf[:0], false
	return s, t
}
