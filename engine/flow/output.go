package flow

import (
	"fmt"

	"github.com/openfsb/fsb/engine/expr"
)

// render appends the JSON of o. absent reports a value that is missing or
// null: object fields that are absent are left out (Belgif: omit absent
// values rather than writing null). raw enables copying call bodies as bytes.
func (r *run) render(dst []byte, o *outNode, env *expr.Env, raw bool) (out []byte, absent bool, err error) {
	switch o.kind {
	case outLiteral:
		return append(dst, o.literal...), o.value == nil, nil
	case outObject:
		dst = append(dst, '{')
		n := 0
		for _, f := range o.fields {
			mark := len(dst)
			if n > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, f.key...)
			var abs bool
			if dst, abs, err = r.render(dst, f.val, env, raw); err != nil {
				return dst, false, fmt.Errorf("%s: %w", f.name, err)
			}
			if abs {
				dst = dst[:mark]
				continue
			}
			n++
		}
		return append(dst, '}'), false, nil
	case outArray:
		dst = append(dst, '[')
		for i, it := range o.items {
			if i > 0 {
				dst = append(dst, ',')
			}
			mark := len(dst)
			var abs bool
			if dst, abs, err = r.render(dst, it, env, raw); err != nil {
				return dst, false, fmt.Errorf("[%d]: %w", i, err)
			}
			if abs {
				dst = append(dst[:mark], "null"...)
			}
		}
		return append(dst, ']'), false, nil
	}
	if raw && o.rawSlot >= 0 && r.raw[o.rawSlot] != nil {
		out, absent, err := rawAt(dst, r.raw[o.rawSlot], o.rawPath)
		if err != nil {
			return dst, false, &malformedError{slot: o.rawSlot, err: err}
		}
		return out, absent, nil
	}
	v, err := o.prog.Run(env)
	if err != nil {
		return dst, false, err
	}
	if v == nil {
		return dst, true, nil
	}
	dst, err = appendJSON(dst, v)
	return dst, false, err
}

// value builds o as a Go value in the JSON data model.
func (r *run) value(o *outNode, env *expr.Env) (any, error) {
	switch o.kind {
	case outLiteral:
		return o.value, nil
	case outObject:
		m := make(map[string]any, len(o.fields))
		for _, f := range o.fields {
			v, err := r.value(f.val, env)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			if v != nil {
				m[f.name] = v
			}
		}
		return m, nil
	case outArray:
		a := make([]any, len(o.items))
		for i, it := range o.items {
			v, err := r.value(it, env)
			if err != nil {
				return nil, fmt.Errorf("[%d]: %w", i, err)
			}
			a[i] = v
		}
		return a, nil
	}
	return o.prog.Run(env)
}

// malformedError is a source body that is not JSON, found while copying it.
type malformedError struct {
	slot int
	err  error
}

func (e *malformedError) Error() string { return "malformed JSON from a source: " + e.err.Error() }
func (e *malformedError) Unwrap() error { return e.err }
