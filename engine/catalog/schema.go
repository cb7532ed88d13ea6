package catalog

import (
	"math"

	"github.com/openfsb/fsb/engine/spec"
)

// derivedNote marks an output schema the catalogue derived itself.
const derivedNote = "Derived from the flow's output mapping and the answers its tests expect: the flow declares no outputSchema. Properties may be absent; the types are those seen in the examples."

// outputSchema returns the JSON Schema of the success body: the flow's own
// outputSchema, or one derived from its output mapping (which fixes the
// property names) and the bodies its tests expect (which give the types).
func outputSchema(fl *spec.Flow, e *Entry) any {
	if fl.OutputSchema != nil {
		return fl.OutputSchema.V
	}
	s := fromOutput(fl.Output, e.bodies)
	s["description"] = derivedNote
	return s
}

// successBodies returns the body every test of fl expects on success.
func successBodies(set *spec.Set, fl *spec.Flow) []any {
	var out []any
	for _, t := range set.Tests {
		if t.Flow == fl.Name && t.Expect.Body != nil && t.Expect.Status >= 200 && t.Expect.Status <= 299 {
			out = append(out, t.Expect.Body.V)
		}
	}
	return out
}

func fromOutput(o *spec.Output, samples []any) map[string]any {
	if o == nil {
		return fromSamples(samples)
	}
	switch o.Kind {
	case spec.OutputObject:
		props := map[string]any{}
		for _, f := range o.Fields {
			var sub []any
			for _, s := range samples {
				if m, ok := s.(map[string]any); ok {
					if v, ok := m[f.Name]; ok {
						sub = append(sub, v)
					}
				}
			}
			props[f.Name] = fromOutput(f.Value, sub)
		}
		return map[string]any{"type": "object", "properties": props}
	case spec.OutputArray:
		var items []any
		for _, s := range samples {
			if l, ok := s.([]any); ok {
				items = append(items, l...)
			}
		}
		s := map[string]any{"type": "array"}
		if len(items) > 0 {
			s["items"] = fromSamples(items)
		}
		return s
	case spec.OutputLiteral:
		if o.Literal == nil {
			return map[string]any{}
		}
		return fromSamples([]any{o.Literal})
	}
	return fromSamples(samples)
}

// fromSamples infers a schema from example values: the common type, the
// union of object properties, the items of arrays.
func fromSamples(samples []any) map[string]any {
	typ := ""
	var objs []map[string]any
	var items []any
	for _, s := range samples {
		t := ""
		switch v := s.(type) {
		case nil:
			continue
		case map[string]any:
			t = "object"
			objs = append(objs, v)
		case []any:
			t = "array"
			items = append(items, v...)
		case string:
			t = "string"
		case bool:
			t = "boolean"
		case float64:
			t = "integer"
			if v != math.Trunc(v) {
				t = "number"
			}
		default:
			return map[string]any{}
		}
		switch {
		case typ == "" || typ == t:
			typ = t
		case (typ == "integer" && t == "number") || (typ == "number" && t == "integer"):
			typ = "number"
		default:
			return map[string]any{} // mixed: say nothing rather than something wrong
		}
	}
	switch typ {
	case "":
		return map[string]any{}
	case "object":
		keys := map[string][]any{}
		var order []string
		for _, m := range objs {
			for k, v := range m {
				if _, seen := keys[k]; !seen {
					order = append(order, k)
				}
				keys[k] = append(keys[k], v)
			}
		}
		props := map[string]any{}
		for _, k := range order {
			props[k] = fromSamples(keys[k])
		}
		return map[string]any{"type": "object", "properties": props}
	case "array":
		s := map[string]any{"type": "array"}
		if len(items) > 0 {
			s["items"] = fromSamples(items)
		}
		return s
	}
	return map[string]any{"type": typ}
}
