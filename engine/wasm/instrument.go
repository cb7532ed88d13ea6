package wasm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Untrusted modules are stopped by deadline checks compiled into their own
// code, not by wazero's WithCloseOnContextDone, which leaves native code at
// every loop back-edge to ask Go whether the module was closed (~50 ns each;
// RATIONALE.md, "Timeouts"). instrument rewrites a module before it is
// compiled:
//
//   - a new mutable i32 global counts loop iterations down from pollEvery;
//   - the head of every loop decrements it, and when it reaches 0 resets it
//     and calls the imported host function interruptModule.interruptPoll,
//     which checks the call's deadline and context in Go and traps the call
//     when either has passed (hostfuncs.go);
//   - so the new import fits the function index space, every function index
//     after the imported ones moves up by one: calls, ref.func, exports, the
//     start function, element segments and the name section.
//
// Calls and recursion need no check: the stack is bounded, and every
// unbounded computation goes round a loop. The call to Go matters twice:
// it checks the deadline, and it is where the Go scheduler can stop the
// goroutine (a garbage collection waits for every goroutine; native code
// in a loop that never calls Go would hold up the whole process).

const (
	interruptModule = "openfsb_interrupt"
	interruptPoll   = "poll"
	// pollEvery is how many loop iterations run between two polls: a poll
	// costs ~100 ns, an iteration of a tight loop ~1 ns.
	pollEvery = 1024
)

// Section ids (WebAssembly core 2.0, 5.5.2).
const (
	secCustom   = 0
	secType     = 1
	secImport   = 2
	secGlobal   = 6
	secExport   = 7
	secStart    = 8
	secElement  = 9
	secCode     = 10
	sectionLast = 0xff // a rank after every section
)

// sectionRank orders the known sections as the binary format requires.
var sectionRank = map[byte]int{1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 13: 6, 6: 7, 7: 8, 8: 9, 9: 10, 12: 11, 10: 12, 11: 13, sectionLast: 14}

var errTruncated = errors.New("unexpected end of the module")

// rewriter holds what the passes over a module's sections share.
type rewriter struct {
	importedFuncs uint32 // function imports before ours: indices below stay
	counter       uint32 // index of the new global
	poll          uint32 // function index of the new import
}

// fn maps an old function index to the new one.
func (w *rewriter) fn(i uint32) uint32 {
	if i >= w.importedFuncs {
		return i + 1
	}
	return i
}

// instrument returns a copy of bin with the deadline checks described
// above. It refuses what it cannot rewrite faithfully, naming it.
func instrument(bin []byte) ([]byte, error) {
	if len(bin) < 8 || !bytes.Equal(bin[:4], []byte("\x00asm")) {
		return nil, errors.New("not a WebAssembly binary (no \\0asm header)")
	}
	if v := binary.LittleEndian.Uint32(bin[4:8]); v != 1 {
		return nil, fmt.Errorf("binary format version %d, want 1", v)
	}
	type section struct {
		id   byte
		body []byte
	}
	var sections []section
	has := map[byte]bool{}
	r := reader{b: bin, pos: 8}
	for r.pos < len(r.b) {
		id := r.byte()
		body := r.take(int(r.u32()))
		if r.err != nil {
			return nil, fmt.Errorf("section %d: %w", id, r.err)
		}
		if _, known := sectionRank[id]; !known || id == sectionLast {
			if id != secCustom {
				return nil, fmt.Errorf("unknown section id %d", id)
			}
		}
		if id != secCustom && has[id] {
			return nil, fmt.Errorf("section %d appears twice", id)
		}
		has[id] = true
		sections = append(sections, section{id, body})
	}

	// First pass: the counts the new indices follow.
	var w rewriter
	var globals, types uint32
	for _, s := range sections {
		var err error
		switch s.id {
		case secType:
			types, err = count(s.body)
		case secImport:
			var g uint32
			w.importedFuncs, g, err = countImports(s.body)
			globals += g
		case secGlobal:
			var n uint32
			n, err = count(s.body)
			globals += n
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
	}
	w.counter, w.poll = globals, w.importedFuncs

	out := make([]byte, 0, len(bin)+len(bin)/8+64)
	out = append(out, bin[:8]...)
	emit := func(id byte, body []byte) {
		out = append(out, id)
		out = binary.AppendUvarint(out, uint64(len(body)))
		out = append(out, body...)
	}
	// The new type () -> (), the import, the global; sections a module
	// lacks are created in their place.
	newType := func(body []byte) []byte { return appendVec(body, 0x60, 0x00, 0x00) }
	newImport := func(body []byte) []byte {
		var e []byte
		e = appendName(e, interruptModule)
		e = appendName(e, interruptPoll)
		e = binary.AppendUvarint(append(e, 0x00), uint64(types))
		return appendVec(body, e...)
	}
	newGlobal := func(body []byte) []byte { // (global (mut i32) (i32.const pollEvery))
		g := binary.AppendVarint([]byte{0x7f, 0x01, 0x41}, pollEvery)
		return appendVec(body, append(g, 0x0b)...)
	}
	added := map[byte]func([]byte) []byte{secType: newType, secImport: newImport, secGlobal: newGlobal}
	emitMissing := func(rank int) {
		for _, id := range []byte{secType, secImport, secGlobal} {
			if !has[id] && rank > sectionRank[id] {
				emit(id, added[id](nil))
				has[id] = true
			}
		}
	}
	for _, s := range sections {
		if s.id != secCustom {
			emitMissing(sectionRank[s.id])
		}
		var body []byte
		var err error
		switch s.id {
		case secType, secImport, secGlobal:
			if s.id == secImport {
				if err = checkImports(s.body); err != nil {
					break
				}
			}
			body = added[s.id](s.body)
			if s.id == secGlobal {
				body, err = w.rewriteConstExprs(body)
			}
		case secExport:
			body, err = w.rewriteExports(s.body)
		case secStart:
			r := reader{b: s.body}
			body = binary.AppendUvarint(nil, uint64(w.fn(r.u32())))
			err = r.err
		case secElement:
			body, err = w.rewriteElements(s.body)
		case secCode:
			body, err = w.rewriteCode(s.body)
		case secCustom:
			body, err = w.rewriteCustom(s.body)
		default:
			body = s.body
		}
		if err != nil {
			return nil, fmt.Errorf("section %d: %w", s.id, err)
		}
		emit(s.id, body)
	}
	emitMissing(sectionRank[sectionLast])
	return out, nil
}

// count reads the element count at the start of a vector section.
func count(body []byte) (uint32, error) {
	r := reader{b: body}
	n := r.u32()
	return n, r.err
}

// countImports counts the function and global imports of an import section.
func countImports(body []byte) (funcs, globals uint32, err error) {
	r := reader{b: body}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		r.name()
		r.name()
		switch kind := r.byte(); kind {
		case 0x00: // function: type index
			r.u32()
			funcs++
		case 0x01: // table: reftype, limits
			r.byte()
			r.limits()
		case 0x02: // memory: limits
			r.limits()
		case 0x03: // global: valtype, mutability
			r.byte()
			r.byte()
			globals++
		default:
			return 0, 0, fmt.Errorf("unknown import kind %#x", kind)
		}
	}
	return funcs, globals, r.err
}

// checkImports refuses a module that imports from the host's reserved module.
func checkImports(body []byte) error {
	r := reader{b: body}
	for n := r.u32(); n > 0 && r.err == nil; n-- {
		if mod := r.name(); mod == interruptModule {
			return fmt.Errorf("imports from %q, a module name the host reserves", mod)
		}
		r.name()
		switch r.byte() {
		case 0x00:
			r.u32()
		case 0x01:
			r.byte()
			r.limits()
		case 0x02:
			r.limits()
		default:
			r.byte()
			r.byte()
		}
	}
	return r.err
}

func appendName(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

// appendVec adds one element (its bytes given) to a vector: count, elements.
// vec is empty or a well-formed vector.
func appendVec(vec []byte, elem ...byte) []byte {
	var n uint32
	r := reader{b: vec}
	if len(vec) > 0 {
		n = r.u32()
	}
	out := binary.AppendUvarint(make([]byte, 0, len(vec)+len(elem)+5), uint64(n)+1)
	out = append(out, vec[r.pos:]...)
	return append(out, elem...)
}

// rewriteExports moves the function indices of exports.
func (w *rewriter) rewriteExports(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(body)+16), uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		out = appendName(out, r.name())
		kind := r.byte()
		idx := r.u32()
		if kind == 0x00 {
			idx = w.fn(idx)
		}
		out = binary.AppendUvarint(append(out, kind), uint64(idx))
	}
	return w.done(&r, out)
}

// rewriteConstExprs moves ref.func in the init expressions of a global
// section (after its count: valtype, mutability, expression).
func (w *rewriter) rewriteConstExprs(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(body)+8), uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		out = append(out, r.byte(), r.byte())
		out = w.expr(&r, out)
	}
	return w.done(&r, out)
}

// rewriteElements moves the function indices of element segments (the
// eight encodings of core 2.0, 5.5.12).
func (w *rewriter) rewriteElements(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(body)+16), uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		flags := r.u32()
		if flags > 7 {
			return nil, fmt.Errorf("element segment flags %d", flags)
		}
		out = binary.AppendUvarint(out, uint64(flags))
		if flags&0b010 != 0 && flags&0b001 == 0 { // an explicit table index
			out = binary.AppendUvarint(out, uint64(r.u32()))
		}
		if flags&0b001 == 0 { // active: an offset expression
			out = w.expr(&r, out)
		}
		if flags&0b011 != 0 { // an element kind or reference type
			out = append(out, r.byte())
		}
		items := r.u32()
		out = binary.AppendUvarint(out, uint64(items))
		for ; items > 0 && r.err == nil; items-- {
			if flags&0b100 == 0 {
				out = binary.AppendUvarint(out, uint64(w.fn(r.u32())))
			} else {
				out = w.expr(&r, out)
			}
		}
	}
	return w.done(&r, out)
}

// expr copies a constant expression up to its end, moving ref.func.
func (w *rewriter) expr(r *reader, out []byte) []byte {
	for r.err == nil {
		op := r.byte()
		out = append(out, op)
		switch op {
		case 0x0b:
			return out
		case 0xd2: // ref.func
			out = binary.AppendUvarint(out, uint64(w.fn(r.u32())))
		default:
			at := r.pos
			if err := r.skipImmediates(op); err != nil {
				r.fail(err)
			}
			out = append(out, r.b[at:r.pos]...)
		}
	}
	return out
}

// rewriteCustom moves the function indices of the name section's
// function, local and label names; other custom sections are kept.
func (w *rewriter) rewriteCustom(body []byte) ([]byte, error) {
	r := reader{b: body}
	if name := r.name(); r.err != nil || name != "name" {
		return body, nil
	}
	out := appendName(make([]byte, 0, len(body)+16), "name")
	for r.pos < len(r.b) && r.err == nil {
		id := r.byte()
		sub := r.take(int(r.u32()))
		if id >= 1 && id <= 3 { // function names; local and label names (indirect)
			sub = w.rewriteNameMap(sub, id != 1)
		}
		out = binary.AppendUvarint(append(out, id), uint64(len(sub)))
		out = append(out, sub...)
	}
	if r.err != nil { // a damaged name section is only debug info: drop it
		return appendName(nil, "name"), nil
	}
	return out, nil
}

func (w *rewriter) rewriteNameMap(sub []byte, indirect bool) []byte {
	r := reader{b: sub}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(sub)+8), uint64(n))
	for ; n > 0 && r.err == nil; n-- {
		out = binary.AppendUvarint(out, uint64(w.fn(r.u32())))
		at := r.pos
		if indirect {
			for m := r.u32(); m > 0 && r.err == nil; m-- {
				r.u32()
				r.name()
			}
		} else {
			r.name()
		}
		out = append(out, r.b[at:r.pos]...)
	}
	if r.err != nil {
		return nil
	}
	return append(out, sub[r.pos:]...)
}

func (w *rewriter) done(r *reader, out []byte) ([]byte, error) {
	if r.err == nil && r.pos != len(r.b) {
		return nil, errors.New("bytes after the last entry")
	}
	return out, r.err
}

// rewriteCode rewrites every function body of a code section.
func (w *rewriter) rewriteCode(body []byte) ([]byte, error) {
	r := reader{b: body}
	n := r.u32()
	out := binary.AppendUvarint(make([]byte, 0, len(body)+len(body)/8), uint64(n))
	var fn []byte
	for i := uint32(0); i < n && r.err == nil; i++ {
		code := r.take(int(r.u32()))
		if r.err != nil {
			break
		}
		var err error
		if fn, err = w.rewriteBody(fn[:0], code); err != nil {
			return nil, fmt.Errorf("function %d: %w", w.importedFuncs+i, err)
		}
		out = binary.AppendUvarint(out, uint64(len(fn)))
		out = append(out, fn...)
	}
	return w.done(&r, out)
}

// pollCheck is the code at the head of every loop:
//
//	global.get $n  i32.const 1  i32.sub  global.set $n
//	global.get $n  i32.eqz
//	if  i32.const pollEvery  global.set $n  call $poll  end
func (w *rewriter) pollCheck(out []byte) []byte {
	g := func(op byte) { out = binary.AppendUvarint(append(out, op), uint64(w.counter)) }
	g(0x23)
	out = append(out, 0x41, 0x01, 0x6b)
	g(0x24)
	g(0x23)
	out = append(out, 0x45, 0x04, 0x40, 0x41)
	out = binary.AppendVarint(out, pollEvery)
	g(0x24)
	out = binary.AppendUvarint(append(out, 0x10), uint64(w.poll))
	return append(out, 0x0b)
}

// rewriteBody appends code (locals, then instructions) to out with the
// poll check after the block type of every loop and function indices moved.
func (w *rewriter) rewriteBody(out, code []byte) ([]byte, error) {
	r := reader{b: code}
	for n := r.u32(); n > 0 && r.err == nil; n-- { // local declarations
		r.u32()
		r.byte()
	}
	copied := 0
	for r.pos < len(r.b) && r.err == nil {
		at := r.pos
		op := r.byte()
		switch op {
		case 0x10, 0x12, 0xd2: // call, return_call, ref.func
			out = append(out, code[copied:r.pos]...)
			out = binary.AppendUvarint(out, uint64(w.fn(r.u32())))
			copied = r.pos
			continue
		}
		if err := r.skipImmediates(op); err != nil {
			return nil, fmt.Errorf("instruction %#x at byte %d: %w", op, at, err)
		}
		if op == 0x03 { // loop
			out = append(out, code[copied:r.pos]...)
			out = w.pollCheck(out)
			copied = r.pos
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return append(out, code[copied:]...), nil
}

// skipImmediates moves past the immediates of the instruction op (its
// opcode byte read), or says why it cannot.
func (r *reader) skipImmediates(op byte) error {
	switch {
	case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
		r.blockType()
	case op == 0x0c || op == 0x0d: // br, br_if
		r.u32()
	case op == 0x0e: // br_table
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.u32()
		}
		r.u32()
	case op == 0x10 || op == 0x12: // call, return_call
		r.u32()
	case op == 0x11 || op == 0x13: // call_indirect, return_call_indirect
		r.u32()
		r.u32()
	case op == 0x1c: // select t*
		for n := r.u32(); n > 0 && r.err == nil; n-- {
			r.byte()
		}
	case op >= 0x20 && op <= 0x26: // local.*, global.*, table.get/set
		r.u32()
	case op >= 0x28 && op <= 0x3e: // loads and stores
		r.memarg()
	case op == 0x3f || op == 0x40: // memory.size, memory.grow
		r.u32()
	case op == 0x41 || op == 0x42: // i32.const, i64.const
		r.leb()
	case op == 0x43:
		r.take(4)
	case op == 0x44:
		r.take(8)
	case op == 0xd0: // ref.null t
		r.byte()
	case op == 0xd2: // ref.func
		r.u32()
	case op == 0xfc:
		return r.skipFC()
	case op == 0xfd:
		return r.skipSIMD()
	case op == 0xfe:
		return r.skipAtomic()
	case op <= 0x01, op == 0x05, op == 0x0b, op == 0x0f, op == 0x1a, op == 0x1b, op >= 0x45 && op <= 0xc4, op == 0xd1:
		// no immediates
	default:
		return errors.New("an instruction the timeout instrumentation does not know")
	}
	return r.err
}

func (r *reader) skipFC() error {
	switch sub := r.u32(); {
	case sub <= 7: // saturating truncations
	case sub == 8, sub == 10, sub == 12, sub == 14: // memory.init, memory.copy, table.init, table.copy
		r.u32()
		r.u32()
	case sub == 9, sub == 11, sub == 13, sub == 15, sub == 16, sub == 17: // data.drop, memory.fill, elem.drop, table.grow/size/fill
		r.u32()
	default:
		return fmt.Errorf("unknown 0xfc instruction %d", sub)
	}
	return r.err
}

func (r *reader) skipSIMD() error {
	switch sub := r.u32(); {
	case sub <= 11, sub == 92, sub == 93: // loads, stores
		r.memarg()
	case sub == 12, sub == 13: // v128.const, i8x16.shuffle
		r.take(16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		r.byte()
	case sub >= 84 && sub <= 91: // load and store lane
		r.memarg()
		r.byte()
	case sub <= 255: // every other SIMD instruction has no immediate
	default:
		return fmt.Errorf("unknown 0xfd instruction %d", sub)
	}
	return r.err
}

func (r *reader) skipAtomic() error {
	switch sub := r.u32(); {
	case sub == 3: // atomic.fence
		r.byte()
	case sub <= 2, sub >= 0x10 && sub <= 0x4e:
		r.memarg()
	default:
		return fmt.Errorf("unknown 0xfe instruction %d", sub)
	}
	return r.err
}

// reader decodes the binary format; the first error sticks and later reads
// return zero values.
type reader struct {
	b   []byte
	pos int
	err error
}

func (r *reader) fail(err error) {
	if r.err == nil {
		r.err = err
	}
	r.pos = len(r.b)
}

func (r *reader) byte() byte {
	if r.pos >= len(r.b) {
		r.fail(errTruncated)
		return 0
	}
	c := r.b[r.pos]
	r.pos++
	return c
}

func (r *reader) take(n int) []byte {
	if n < 0 || n > len(r.b)-r.pos {
		r.fail(errTruncated)
		return nil
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b
}

// leb skips a LEB128 number of any width (at most 10 bytes).
func (r *reader) leb() {
	for range 10 {
		if r.byte()&0x80 == 0 {
			return
		}
	}
	r.fail(errors.New("LEB128 number longer than 10 bytes"))
}

func (r *reader) u32() uint32 {
	v, n := binary.Uvarint(r.b[min(r.pos, len(r.b)):])
	if n <= 0 || n > 5 || v > 1<<32-1 {
		r.fail(errors.New("malformed u32"))
		return 0
	}
	r.pos += n
	return uint32(v)
}

func (r *reader) name() string { return string(r.take(int(r.u32()))) }

func (r *reader) memarg() {
	r.u32() // alignment (and memory index flag)
	r.leb() // offset
}

func (r *reader) limits() {
	switch flags := r.byte(); flags {
	case 0x00:
		r.leb()
	case 0x01, 0x03:
		r.leb()
		r.leb()
	default:
		r.fail(fmt.Errorf("unknown limits flags %#x", flags))
	}
}

// blockType skips an empty type (0x40), a value type, or a type index (s33).
func (r *reader) blockType() {
	if r.pos < len(r.b) && r.b[r.pos]&0xc0 == 0x40 { // one byte, a negative s33
		r.pos++
		return
	}
	r.leb()
}
