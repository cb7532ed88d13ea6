package catalog

import (
	"encoding/json"
	"net/url"
	"slices"
	"strings"

	"github.com/openfsb/fsb/engine/spec"
)

// Example is a request and the answer the flow gives it, taken from the
// flow's first successful Test document. Only the consumer side is shown:
// the request and the expected answer, never the mocked source answers.
type Example struct {
	Test     string            `json:"test"`
	Method   string            `json:"method"`
	Path     string            `json:"path"`
	Query    map[string]string `json:"query,omitempty"`
	Params   map[string]string `json:"-"` // path parameters, from Path against the flow's template
	Body     any               `json:"body,omitempty"`
	Status   int               `json:"status"`
	Response any               `json:"response"`
}

// example finds the first test of fl that expects a 2xx JSON body.
func example(set *spec.Set, fl *spec.Flow) *Example {
	for _, t := range set.Tests {
		e := t.Expect
		if t.Flow != fl.Name || e.Body == nil || e.Status < 200 || e.Status > 299 || t.Request.RawBody != "" {
			continue
		}
		path := t.Request.Path
		if path == "" {
			path = fl.Path
		}
		ex := &Example{Test: t.Name, Method: fl.Method, Path: path, Status: e.Status, Response: e.Body.V}
		ex.Params = matchPath(fl.Path, path)
		if len(t.Request.Query) > 0 {
			ex.Query = t.Request.Query
		}
		if t.Request.Body != nil {
			ex.Body = t.Request.Body.V
		}
		return ex
	}
	return nil
}

// URL returns the example's path with its query string.
func (ex *Example) URL() string {
	if len(ex.Query) == 0 {
		return ex.Path
	}
	keys := make([]string, 0, len(ex.Query))
	for k := range ex.Query {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	q := url.Values{}
	for _, k := range keys {
		q.Set(k, ex.Query[k])
	}
	return ex.Path + "?" + q.Encode()
}

// RequestJSON and ResponseJSON are the bodies, indented.
func (ex *Example) RequestJSON() string  { return indent(ex.Body) }
func (ex *Example) ResponseJSON() string { return indent(ex.Response) }

func indent(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// matchPath returns the {parameters} of template in path, unescaped.
func matchPath(template, path string) map[string]string {
	tp, pp := strings.Split(template, "/"), strings.Split(path, "/")
	if len(tp) != len(pp) {
		return nil
	}
	out := map[string]string{}
	for i, seg := range tp {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			v, err := url.PathUnescape(pp[i])
			if err != nil {
				return nil
			}
			out[seg[1:len(seg)-1]] = v
		}
	}
	return out
}
