package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"reflect"
	"sort"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
)

// Set is every document loaded from one configuration directory.
type Set struct {
	Sources map[string]*Source
	Flows   map[string]*Flow
	Tests   []*Test
	Plugins map[string]*Plugin
	Files   []string
	Src     Sources // lines of every file, for error snippets

	dupFlows []*Flow // flows whose name was taken: checked, never compiled
}

// FlowNames returns the flow names in sorted order.
func (s *Set) FlowNames() []string { return sortedKeys(s.Flows) }

// SourceNames returns the source names in sorted order.
func (s *Set) SourceNames() []string { return sortedKeys(s.Sources) }

func sortedKeys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// LoadDir loads every *.yaml and *.yml file under dir (recursively).
func LoadDir(dir string) (*Set, error) {
	return LoadFS(os.DirFS(dir), dir)
}

// LoadFS loads every *.yaml and *.yml file of fsys; prefix is prepended to
// file names in errors. It returns the set even when there are errors, so
// callers can report more; the error is an ErrorList then.
func LoadFS(fsys fs.FS, prefix string) (*Set, error) {
	var names []string
	err := fs.WalkDir(fsys, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read config directory %s: %w", prefix, err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("config directory %s holds no .yaml files", prefix)
	}
	files := map[string][]byte{}
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", n, err)
		}
		files[path.Join(prefix, n)] = b
	}
	return Load(files)
}

// Load decodes and checks the given files (name → content).
func Load(files map[string][]byte) (*Set, error) {
	set := &Set{Sources: map[string]*Source{}, Flows: map[string]*Flow{}, Plugins: map[string]*Plugin{}, Src: Sources{}}
	var errs ErrorList
	for name := range files {
		set.Files = append(set.Files, name)
	}
	sort.Strings(set.Files)
	for _, name := range set.Files {
		set.Src[name] = strings.Split(string(files[name]), "\n")
	}
	for _, name := range set.Files {
		set.loadFile(name, files[name], &errs)
	}
	set.check(&errs)
	errs.Sort()
	return set, errs.Err()
}

func (s *Set) loadFile(name string, content []byte, errs *ErrorList) {
	f, err := parser.ParseBytes(content, 0)
	if err != nil {
		var se *yaml.SyntaxError
		pos := Pos{File: name, Line: 1, Col: 1}
		msg := err.Error()
		if errors.As(err, &se) {
			msg = se.Message
			if se.Token != nil && se.Token.Position != nil {
				pos.Line, pos.Col = se.Token.Position.Line, se.Token.Position.Column
			}
		}
		*errs = append(*errs, s.Src.Errorf(pos, "yaml syntax: %s", msg))
		return
	}
	for _, doc := range f.Docs {
		if doc.Body == nil {
			continue
		}
		d := &decoder{file: name, src: s.Src, errs: errs, anchors: map[string]ast.Node{}, start: len(*errs)}
		ast.Walk(anchorCollector(d.anchors), doc.Body)
		body := unwrap(d, doc.Body)
		m, ok := body.(*ast.MappingNode)
		if !ok {
			d.errorf(body, "a document must be a mapping with a kind (Source, Flow, Plugin or Test)")
			continue
		}
		kind := ""
		for _, kv := range m.Values {
			if k, _ := keyText(kv.Key); k == "kind" {
				kind, _ = scalarText(unwrap(d, kv.Value))
				if kind == "" {
					d.errorf(kv.Value, "kind must be Source, Flow, Plugin or Test")
				}
			}
		}
		switch kind {
		case KindSource:
			src := &Source{}
			d.decode(m, reflect.ValueOf(src).Elem())
			s.addSource(src, errs)
		case KindFlow:
			fl := &Flow{}
			d.decode(m, reflect.ValueOf(fl).Elem())
			s.addFlow(fl, errs)
		case KindTest:
			t := &Test{}
			d.decode(m, reflect.ValueOf(t).Elem())
			s.Tests = append(s.Tests, t)
		case KindPlugin:
			pl := &Plugin{}
			d.decode(m, reflect.ValueOf(pl).Elem())
			if prev, dup := s.Plugins[pl.Name]; dup && pl.Name != "" {
				*errs = append(*errs, s.Src.Errorf(where(pl.At, "name", pl.Pos), "duplicate plugin name %q (first defined at %s)", pl.Name, prev.Pos))
			} else if pl.Name != "" {
				s.Plugins[pl.Name] = pl
			}
		case "":
			if d.errCount() == 0 {
				d.errorf(m, "missing key \"kind\": every document names its kind (Source, Flow, Plugin or Test)")
			}
		default:
			d.errorf(m, "unknown kind %q: expected Source, Flow, Plugin or Test", kind)
		}
	}
}

type anchorCollector map[string]ast.Node

func (a anchorCollector) Visit(n ast.Node) ast.Visitor {
	if an, ok := n.(*ast.AnchorNode); ok {
		a[an.Name.GetToken().Value] = an.Value
	}
	return a
}

func (s *Set) addSource(src *Source, errs *ErrorList) {
	if src.Name == "" {
		return
	}
	if prev, dup := s.Sources[src.Name]; dup {
		*errs = append(*errs, s.Src.Errorf(where(src.At, "name", src.Pos), "duplicate source name %q (first defined at %s)", src.Name, prev.Pos))
		return
	}
	s.Sources[src.Name] = src
}

func (s *Set) addFlow(fl *Flow, errs *ErrorList) {
	if fl.Name == "" {
		return
	}
	if prev, dup := s.Flows[fl.Name]; dup {
		*errs = append(*errs, s.Src.Errorf(where(fl.At, "name", fl.Pos), "duplicate flow name %q (first defined at %s)", fl.Name, prev.Pos))
		s.dupFlows = append(s.dupFlows, fl)
		return
	}
	s.Flows[fl.Name] = fl
}
