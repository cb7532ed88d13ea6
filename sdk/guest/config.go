package guest

import (
	"fmt"

	"github.com/openfsb/fsb/sdk/jsonx"
	"github.com/valyala/fastjson"
)

// Config is the configuration of the step being run: the step's config
// mapping merged over the plugin declaration's, as JSON ({} when there is
// none). It is read from the host on first use only, so a handler that
// does not look at it does not pay for it. A Config is valid during the call
// it was passed to.
//
// The getters take a path of keys into nested objects (and decimal indexes
// into arrays), like fastjson's: cfg.String("db", "host") reads
// {"db":{"host":"..."}}. A missing key or a value of another type gives the
// zero value; use Has or Value to tell them apart, and Err to know whether
// the configuration could be read at all.
type Config struct {
	st *configState
}

type configState struct {
	load   func() ([]byte, error) // nil when raw is given
	loaded bool
	raw    []byte
	parsed bool
	root   *fastjson.Value
	err    error
	p      fastjson.Parser
}

// Raw returns the configuration as JSON, or nil if it could not be read.
func (c Config) Raw() []byte { return c.state().raw }

// Err returns the error that made the configuration unreadable (the host
// call failed or it is not valid JSON), or nil.
func (c Config) Err() error {
	st := c.state()
	st.parse()
	return st.err
}

// state loads the configuration if needed.
func (c Config) state() *configState {
	st := c.st
	if st == nil { // the zero Config: {}
		return &configState{raw: []byte("{}"), loaded: true}
	}
	if !st.loaded {
		st.loaded = true
		if st.load != nil {
			st.raw, st.err = st.load()
		}
		if st.err == nil && len(st.raw) == 0 {
			st.raw = []byte("{}")
		}
	}
	return st
}

func (st *configState) parse() {
	if st.parsed {
		return
	}
	st.parsed = true
	if st.err != nil {
		return
	}
	if err := jsonx.Validate(st.raw); err != nil {
		st.err = fmt.Errorf("guest: configuration: %w", err)
		return
	}
	st.root, st.err = st.p.ParseBytes(st.raw)
}

// Value returns the configuration value at keys (the whole configuration
// for no keys), or nil if there is none.
func (c Config) Value(keys ...string) *fastjson.Value {
	st := c.state()
	st.parse()
	if st.root == nil {
		return nil
	}
	return st.root.Get(keys...)
}

// Has reports whether the configuration has a value (null included) at keys.
func (c Config) Has(keys ...string) bool { return c.Value(keys...) != nil }

// String returns the string at keys, or "".
func (c Config) String(keys ...string) string {
	v := c.Value(keys...)
	if v == nil {
		return ""
	}
	b, err := v.StringBytes()
	if err != nil {
		return ""
	}
	return string(b)
}

// Strings returns the strings at keys: those of an array (other elements are
// skipped), or a single string as a one-element list, so that both
// `fields: [a, b]` and `fields: a` work. It returns nil for anything else.
func (c Config) Strings(keys ...string) []string {
	v := c.Value(keys...)
	if v == nil {
		return nil
	}
	switch v.Type() {
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return []string{string(b)}
	case fastjson.TypeArray:
		a, _ := v.Array()
		out := make([]string, 0, len(a))
		for _, e := range a {
			if b, err := e.StringBytes(); err == nil {
				out = append(out, string(b))
			}
		}
		return out
	}
	return nil
}

// Bytes returns the JSON encoding of the value at keys (an object, say, to
// decode as the plugin likes), or nil if there is none. It is not a base64
// decoder: a string comes back with its quotes.
func (c Config) Bytes(keys ...string) []byte {
	v := c.Value(keys...)
	if v == nil {
		return nil
	}
	return jsonx.AppendValue(nil, v)
}

// Int returns the integer at keys, or 0 (also for a number with a fraction
// or out of range).
func (c Config) Int(keys ...string) int {
	v := c.Value(keys...)
	if v == nil {
		return 0
	}
	n, err := v.Int()
	if err != nil {
		return 0
	}
	return n
}

// Float returns the number at keys, or 0.
func (c Config) Float(keys ...string) float64 {
	v := c.Value(keys...)
	if v == nil {
		return 0
	}
	f, err := v.Float64()
	if err != nil {
		return 0
	}
	return f
}

// Bool returns the boolean at keys, or false.
func (c Config) Bool(keys ...string) bool {
	v := c.Value(keys...)
	if v == nil {
		return false
	}
	b, err := v.Bool()
	if err != nil {
		return false
	}
	return b
}
