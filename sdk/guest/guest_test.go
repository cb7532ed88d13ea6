package guest

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

// withHandler registers h for o during the test.
func withHandler(t *testing.T, o op, h Handler) {
	t.Helper()
	old := handlers[o]
	handlers[o] = h
	t.Cleanup(func() { handlers[o] = old })
}

// fakeMemory gives native buffers 32-bit addresses, as wasm32 would: the
// same first byte always gets the same address.
type fakeMemory struct {
	next uint32
	addr map[uintptr]uint32
}

func (m *fakeMemory) addrOf(b []byte) uint32 {
	if len(b) == 0 {
		panic("addr of an empty buffer")
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if a, ok := m.addr[p]; ok {
		return a
	}
	if m.addr == nil {
		m.addr, m.next = map[uintptr]uint32{}, 0x10000
	}
	a := m.next
	m.next += 0x1000
	m.addr[p] = a
	return a
}

// host plays the engine's side of one call.
type host struct {
	t      *testing.T
	e      *exports
	config string
	reads  int // calls of fsb.config
}

func newHost(t *testing.T, config string) *host {
	h := &host{t: t, config: config}
	m := new(fakeMemory)
	h.e = newExports(m.addrOf, func() ([]byte, error) {
		return readGrow(func(buf []byte) uint32 {
			h.reads++
			return uint32(copy(buf, h.config)) + uint32(max(0, len(h.config)-len(buf)))
		})
	})
	return h
}

// call runs o on in as the host does and returns the output and the failure
// bit, after freeing the output.
func (h *host) call(o op, in []byte) ([]byte, bool) {
	h.t.Helper()
	var ptr uint32
	if in != nil {
		ptr = h.e.alloc(uint32(len(in)))
		if ptr == 0 {
			h.t.Fatalf("alloc(%d) = 0", len(in))
		}
		copy(h.e.pinned[ptr], in)
	}
	r := h.e.call(o, ptr, uint32(len(in)))
	p, n, failed := unpack(r)
	if n == 0 {
		if p != 0 {
			h.t.Errorf("empty output with pointer %#x", p)
		}
		return nil, failed
	}
	buf, ok := h.e.pinned[p]
	if !ok || len(buf) < int(n) {
		h.t.Fatalf("output %#x+%d is not pinned", p, n)
	}
	out := bytes.Clone(buf[:n])
	h.e.free(p, n)
	return out, failed
}

func TestPack(t *testing.T) {
	cases := []struct {
		ptr, n uint32
		failed bool
		want   uint64
	}{
		{0, 0, false, 0},
		{0, 0, true, 1 << 31},
		{1, 2, false, 1<<32 | 2},
		{0x10000, 17, true, 0x10000<<32 | 1<<31 | 17},
		{0xFFFFFFFF, maxLen, false, 0xFFFFFFFF<<32 | maxLen},
		{0xFFFFFFFF, maxLen, true, 0xFFFFFFFF_FFFFFFFF},
	}
	for _, c := range cases {
		got := pack(c.ptr, c.n, c.failed)
		if got != c.want {
			t.Errorf("pack(%#x, %d, %v) = %#x, want %#x", c.ptr, c.n, c.failed, got, c.want)
		}
		p, n, f := unpack(got)
		if p != c.ptr || n != c.n || f != c.failed {
			t.Errorf("unpack(%#x) = %#x, %d, %v", got, p, n, f)
		}
	}
}

func TestCall(t *testing.T) {
	withHandler(t, opTransform, func(in []byte, cfg Config) ([]byte, error) {
		switch {
		case bytes.HasPrefix(in, []byte("echo")):
			return in, nil // the input buffer becomes the output
		case bytes.HasPrefix(in, []byte("tail")):
			return in[4:], nil
		case bytes.HasPrefix(in, []byte("err")):
			return []byte("ignored"), errors.New("bad input: " + string(in))
		case bytes.HasPrefix(in, []byte("emptyerr")):
			return nil, errors.New("")
		case bytes.HasPrefix(in, []byte("panic")):
			panic("boom")
		case bytes.HasPrefix(in, []byte("nilmap")):
			var m map[string]int
			m["x"] = 1
		case bytes.HasPrefix(in, []byte("null")):
			return nil, nil
		case bytes.HasPrefix(in, []byte("cfg")):
			return cfg.Raw(), nil
		}
		return append([]byte("len="), fmt.Sprint(len(in))...), nil
	})
	h := newHost(t, `{"k":"v"}`)
	cases := []struct {
		in      []byte
		want    string // prefix of the output
		failed  bool
		cfgRead bool
	}{
		{[]byte("echo this"), "echo this", false, false},
		{[]byte("tail:rest"), ":rest", false, false},
		{[]byte("err!"), "bad input: err!", true, false},
		{[]byte("emptyerr"), "failed with an empty error message", true, false},
		{[]byte("panic"), "transform: panic: boom\n\ngoroutine ", true, false},
		{[]byte("nilmap"), "transform: panic: assignment to entry in nil map", true, false},
		{[]byte("null"), "", false, false},
		{[]byte("cfg"), `{"k":"v"}`, false, true},
		{[]byte{}, "len=0", false, false},
		{nil, "len=0", false, false},
		{bytes.Repeat([]byte("x"), 100000), "len=100000", false, false},
		{bytes.Repeat([]byte("x"), gcAfter), fmt.Sprintf("len=%d", gcAfter), false, false},
	}
	for _, c := range cases {
		reads := h.reads
		out, failed := h.call(opTransform, c.in)
		if !strings.HasPrefix(string(out), c.want) || (c.want == "") != (out == nil) || failed != c.failed {
			t.Errorf("call(%.10q) = %.60q, failed %v; want %q, %v", c.in, out, failed, c.want, c.failed)
		}
		if (h.reads > reads) != c.cfgRead {
			t.Errorf("call(%.10q) read the config %d times", c.in, h.reads-reads)
		}
	}
	if len(h.e.pinned) != 0 {
		t.Errorf("%d buffers still pinned after the calls: leak", len(h.e.pinned))
	}
}

func TestCallBadInput(t *testing.T) {
	withHandler(t, opTransform, func(in []byte, cfg Config) ([]byte, error) { return in, nil })
	h := newHost(t, "")
	p := h.e.alloc(4)
	for _, c := range []struct{ ptr, n uint32 }{{p + 1, 1}, {p, 5}, {0, 3}, {0xdead, 0}} {
		r := h.e.call(opTransform, c.ptr, c.n)
		out, n, failed := unpack(r)
		msg := string(h.e.pinned[out][:n])
		if !failed || !strings.Contains(msg, "is not a buffer from alloc") {
			t.Errorf("call(%#x, %d) = %q, failed %v", c.ptr, c.n, msg, failed)
		}
		h.e.free(out, n)
	}
	// The input buffer is still there for a correct call.
	copy(h.e.pinned[p], "good")
	r := h.e.call(opTransform, p, 4)
	out, n, failed := unpack(r)
	if failed || string(h.e.pinned[out][:n]) != "good" {
		t.Errorf("call after bad calls: %q, %v", h.e.pinned[out], failed)
	}
	h.e.free(out, n)
	h.e.free(out, n) // a double free is ignored
	h.e.free(0, 0)
	if len(h.e.pinned) != 0 {
		t.Errorf("%d buffers pinned", len(h.e.pinned))
	}
}

func TestAlloc(t *testing.T) {
	h := newHost(t, "")
	a, b := h.e.alloc(0), h.e.alloc(0)
	if a == 0 || b == 0 || a == b {
		t.Errorf("alloc(0) twice = %#x, %#x: want distinct non-zero addresses", a, b)
	}
	if p := h.e.alloc(1 << 31); p != 0 {
		t.Errorf("alloc(2 GiB) = %#x, want 0", p)
	}
	c := h.e.alloc(10)
	if len(h.e.pinned[c]) != 10 {
		t.Errorf("alloc(10) pinned %d bytes", len(h.e.pinned[c]))
	}
	h.e.free(a, 0)
	h.e.free(b, 0)
	h.e.free(c, 10)
	if len(h.e.pinned) != 0 {
		t.Errorf("%d buffers pinned", len(h.e.pinned))
	}
}

func TestUnregistered(t *testing.T) {
	withHandler(t, opDecode, nil)
	h := newHost(t, "")
	out, failed := h.call(opDecode, []byte("x"))
	if !failed || string(out) != "guest: the plugin has no decode operation (no handler registered with guest.Decode)" {
		t.Errorf("decode = %q, failed %v", out, failed)
	}
	if _, err := Run("decode", nil, nil); err == nil || !strings.Contains(err.Error(), "guest.Decode") {
		t.Errorf("Run(decode) error %v", err)
	}
	if _, err := Run("frobnicate", nil, nil); err == nil || !strings.Contains(err.Error(), `no operation "frobnicate"`) {
		t.Errorf("Run(frobnicate) error %v", err)
	}
}

func TestOperations(t *testing.T) {
	for o := range numOps {
		withHandler(t, o, func(in []byte, cfg Config) ([]byte, error) {
			return []byte(opNames[o] + ":" + string(in) + ":" + cfg.String("k")), nil
		})
	}
	h := newHost(t, `{"k":"v"}`)
	for o := range numOps {
		out, failed := h.call(o, []byte("in"))
		if want := opNames[o] + ":in:v"; failed || string(out) != want {
			t.Errorf("%s = %q, %v; want %q", opNames[o], out, failed, want)
		}
		out2, err := Run(opNames[o], []byte("in"), []byte(`{"k":"v"}`))
		if err != nil || !bytes.Equal(out, out2) {
			t.Errorf("Run(%s) = %q, %v; the export gave %q", opNames[o], out2, err, out)
		}
	}
}

func TestRegister(t *testing.T) {
	withHandler(t, opEncode, nil)
	mustPanic := func(what, want string, f func()) {
		t.Helper()
		defer func() {
			if r := recover(); r == nil || r != want {
				t.Errorf("%s: panic %v, want %q", what, r, want)
			}
		}()
		f()
	}
	mustPanic("nil handler", "guest.Encode: nil handler", func() { Encode(nil) })
	Encode(func([]byte, Config) ([]byte, error) { return nil, nil })
	mustPanic("second Encode", "guest.Encode called twice", func() {
		Encode(func([]byte, Config) ([]byte, error) { return nil, nil })
	})
}

func TestReadGrow(t *testing.T) {
	for _, size := range []int{0, 1, 511, 512, 513, 5000, 1 << 20} {
		want := bytes.Repeat([]byte("c"), size)
		calls := 0
		got, err := readGrow(func(buf []byte) uint32 {
			calls++
			if len(buf) >= len(want) {
				copy(buf, want)
			} else {
				copy(buf, "garbage that must not be used")
			}
			return uint32(len(want))
		})
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("size %d: got %d bytes, %v", size, len(got), err)
		}
		if wantCalls := 1 + boolInt(size > 512); calls != wantCalls {
			t.Errorf("size %d: %d calls, want %d", size, calls, wantCalls)
		}
	}
	// A host whose value keeps growing is given up on.
	n := uint32(100)
	_, err := readGrow(func(buf []byte) uint32 { n *= 10; return n })
	if !errors.Is(err, errConfigGrows) {
		t.Errorf("ever-growing: %v", err)
	}
	if _, err := readGrow(func([]byte) uint32 { return 0xFFFFFFFF }); err == nil || !strings.Contains(err.Error(), "invalid length -1") {
		t.Errorf("negative length: %v", err)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestConfig(t *testing.T) {
	raw := `{"s":"str","n":42,"f":1.5,"b":true,"null":null,"list":["a",1,"b"],"one":"x",
		"db":{"host":"h","ports":[5432,5433]},"esc":"a\"b\u00e9","big":1e300}`
	cfg := Config{st: &configState{raw: []byte(raw), loaded: true}}
	if cfg.Err() != nil {
		t.Fatal(cfg.Err())
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{"String(s)", cfg.String("s"), "str"},
		{"String(n)", cfg.String("n"), ""},
		{"String(missing)", cfg.String("missing"), ""},
		{"String(esc)", cfg.String("esc"), `a"bé`},
		{"String(db,host)", cfg.String("db", "host"), "h"},
		{"Int(n)", cfg.Int("n"), 42},
		{"Int(f)", cfg.Int("f"), 0},
		{"Int(s)", cfg.Int("s"), 0},
		{"Int(db,ports,1)", cfg.Int("db", "ports", "1"), 5433},
		{"Float(f)", cfg.Float("f"), 1.5},
		{"Float(n)", cfg.Float("n"), 42.0},
		{"Float(big)", cfg.Float("big"), 1e300},
		{"Float(missing)", cfg.Float("missing"), 0.0},
		{"Bool(b)", cfg.Bool("b"), true},
		{"Bool(s)", cfg.Bool("s"), false},
		{"Strings(list)", cfg.Strings("list"), []string{"a", "b"}},
		{"Strings(one)", cfg.Strings("one"), []string{"x"}},
		{"Strings(n)", cfg.Strings("n"), []string(nil)},
		{"Strings(missing)", cfg.Strings("missing"), []string(nil)},
		{"Bytes(db)", string(cfg.Bytes("db")), `{"host":"h","ports":[5432,5433]}`},
		{"Bytes(esc)", string(cfg.Bytes("esc")), `"a\"bé"`},
		{"Bytes(missing)", cfg.Bytes("missing"), []byte(nil)},
		{"Has(null)", cfg.Has("null"), true},
		{"Has(missing)", cfg.Has("missing"), false},
		{"Has()", cfg.Has(), true},
		{"Raw", string(cfg.Raw()), raw},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}

	// The zero Config and an empty configuration are {}.
	for _, c := range []Config{{}, {st: &configState{load: func() ([]byte, error) { return nil, nil }}}} {
		if string(c.Raw()) != "{}" || c.Err() != nil || c.Has("x") || !c.Has() || c.String("x") != "" {
			t.Errorf("empty config: raw %q err %v", c.Raw(), c.Err())
		}
	}

	// A configuration that cannot be read or parsed: Err says why, getters give zero values.
	loadErr := errors.New("host said no")
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{st: &configState{load: func() ([]byte, error) { return nil, loadErr }}}, "host said no"},
		{Config{st: &configState{raw: []byte(`{"a":`), loaded: true}}, "guest: configuration: "},
	} {
		if c.cfg.String("a") != "" || c.cfg.Has() || c.cfg.Strings("a") != nil || c.cfg.Bytes() != nil {
			t.Errorf("broken config gave values")
		}
		if err := c.cfg.Err(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Err() = %v, want %q", err, c.want)
		}
	}

	// Loaded once, lazily.
	loads := 0
	lazy := Config{st: &configState{load: func() ([]byte, error) { loads++; return []byte(`{"a":"b"}`), nil }}}
	if loads != 0 {
		t.Fatal("loaded before use")
	}
	lazy.String("a")
	lazy.Strings("a")
	lazy.Raw()
	if loads != 1 {
		t.Errorf("loaded %d times", loads)
	}
}

func TestLog(t *testing.T) {
	var got []string
	SetLogOutput(func(l Level, msg string) { got = append(got, l.String()+":"+msg) })
	defer SetLogOutput(nil)
	Log(LevelDebug, "d")
	Log(LevelInfo, "i")
	Log(LevelWarn, "w")
	Log(LevelError, "e")
	Log(Level(2), "odd")
	want := []string{"DEBUG:d", "INFO:i", "WARN:w", "ERROR:e", "LEVEL(2):odd"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("logs %q, want %q", got, want)
	}
}

func TestRunConfig(t *testing.T) {
	withHandler(t, opTransform, func(in []byte, cfg Config) ([]byte, error) { return cfg.Raw(), nil })
	out, err := Run("transform", nil, nil)
	if err != nil || string(out) != "{}" {
		t.Errorf("Run with nil config: %q, %v", out, err)
	}
	out, err = Run("transform", nil, []byte(`{"x":1}`))
	if err != nil || string(out) != `{"x":1}` {
		t.Errorf("Run with config: %q, %v", out, err)
	}
}
