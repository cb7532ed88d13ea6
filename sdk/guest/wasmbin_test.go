package guest

import (
	"errors"
	"fmt"
	"strings"
)

// A tiny reader of WebAssembly binaries (core spec 2.0): just enough of the
// type, import, function and export sections to check a module's imports
// and exports against ABI.md without a runtime.

type wasmModule struct {
	imports map[string]string // "module.name" → signature, e.g. "(i32,i32)->i32", or a kind
	exports map[string]string // name → signature, or "memory", "table", "global"
	order   []string          // export names in module order
}

type wasmReader struct {
	b   []byte
	err error
}

var errShort = errors.New("unexpected end of module")

func (r *wasmReader) byte() byte {
	if len(r.b) == 0 {
		r.err = errShort
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *wasmReader) u32() uint32 {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c := r.byte()
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v
		}
	}
	r.err = errors.New("LEB128 too long")
	return 0
}

func (r *wasmReader) bytes(n uint32) []byte {
	if uint32(len(r.b)) < n {
		r.err = errShort
		r.b = nil
		return nil
	}
	s := r.b[:n]
	r.b = r.b[n:]
	return s
}

func (r *wasmReader) name() string { return string(r.bytes(r.u32())) }

func (r *wasmReader) limits() {
	flags := r.byte()
	r.u32()
	if flags&1 != 0 {
		r.u32()
	}
}

var valTypes = map[byte]string{0x7f: "i32", 0x7e: "i64", 0x7d: "f32", 0x7c: "f64", 0x7b: "v128", 0x70: "funcref", 0x6f: "externref"}

func (r *wasmReader) valTypes() string {
	n := r.u32()
	var s []string
	for range n {
		c := r.byte()
		t, ok := valTypes[c]
		if !ok {
			r.err = fmt.Errorf("unknown value type %#x", c)
		}
		s = append(s, t)
	}
	return strings.Join(s, ",")
}

func parseWasm(b []byte) (*wasmModule, error) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" || string(b[4:8]) != "\x01\x00\x00\x00" {
		return nil, errors.New("not a WebAssembly 1.0 binary")
	}
	m := &wasmModule{imports: map[string]string{}, exports: map[string]string{}}
	r := &wasmReader{b: b[8:]}
	var types []string
	var funcs []string // signature of each function, imports first
	for len(r.b) > 0 && r.err == nil {
		id := r.byte()
		sec := &wasmReader{b: r.bytes(r.u32())}
		if r.err != nil {
			break
		}
		switch id {
		case 1: // types
			for range sec.u32() {
				if form := sec.byte(); form != 0x60 {
					return nil, fmt.Errorf("type form %#x not supported", form)
				}
				params := sec.valTypes()
				results := sec.valTypes()
				sig := "(" + params + ")->"
				if strings.Contains(results, ",") || results == "" {
					sig += "(" + results + ")"
				} else {
					sig += results
				}
				types = append(types, sig)
			}
		case 2: // imports
			for range sec.u32() {
				name := sec.name() + "." + sec.name()
				switch kind := sec.byte(); kind {
				case 0:
					ti := sec.u32()
					if int(ti) >= len(types) {
						return nil, fmt.Errorf("import %s: bad type index", name)
					}
					m.imports[name] = types[ti]
					funcs = append(funcs, types[ti])
				case 1:
					sec.byte()
					sec.limits()
					m.imports[name] = "table"
				case 2:
					sec.limits()
					m.imports[name] = "memory"
				case 3:
					sec.byte()
					sec.byte()
					m.imports[name] = "global"
				default:
					return nil, fmt.Errorf("import %s: kind %d not supported", name, kind)
				}
			}
		case 3: // functions
			for range sec.u32() {
				ti := sec.u32()
				if int(ti) >= len(types) {
					return nil, errors.New("function: bad type index")
				}
				funcs = append(funcs, types[ti])
			}
		case 7: // exports
			for range sec.u32() {
				name := sec.name()
				kind := sec.byte()
				idx := sec.u32()
				switch kind {
				case 0:
					if int(idx) >= len(funcs) {
						return nil, fmt.Errorf("export %s: bad function index", name)
					}
					m.exports[name] = funcs[idx]
				case 1:
					m.exports[name] = "table"
				case 2:
					m.exports[name] = "memory"
				case 3:
					m.exports[name] = "global"
				default:
					m.exports[name] = fmt.Sprintf("kind %d", kind)
				}
				m.order = append(m.order, name)
			}
		}
		if sec.err != nil {
			return nil, fmt.Errorf("section %d: %w", id, sec.err)
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	return m, nil
}
