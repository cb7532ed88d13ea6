// Package csv is the logic of the csv codec plugin: it decodes a CSV file
// (RFC 4180: quoted fields, doubled quotes, line breaks inside quotes)
// into a JSON array of objects, one per record, named and typed by its
// configuration. It only reshapes bytes: fetching the file is the host's
// (engine/connector/file).
//
//	config:
//	  delimiter: ";"          # one character (default ",")
//	  comment: "#"            # lines starting with it are skipped (default none)
//	  header: true            # the first record names the columns (default true)
//	  columns: [id, name]     # the names when header is false
//	  fields:                 # optional: which columns, under which keys, typed
//	    - {column: Ondernemingsnummer, name: enterpriseNumber, required: true}
//	    - {column: Werknemers, name: employees, type: integer}
//	  trim: true              # trim spaces around values (default false)
//	  lazyQuotes: false       # accept a quote inside an unquoted field
//	  ragged: false           # accept records with fewer or more fields than the header
//	  decimalComma: false     # numbers written 12,5
//	  encoding: utf-8         # or latin1
//	  maxRecords: 1000000
//
// Without fields every column is kept as a string under its header name
// (or columns name). With fields only those are kept, in that order; a
// field's column is a header name, or its 1-based position when there is
// no header. type is string (default), integer, number or boolean; an
// empty typed value is left out, and an empty required one is an error.
package csv

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/openfsb/fsb/plugins/internal/records"
	"github.com/openfsb/fsb/sdk/guest"
	"github.com/valyala/fastjson"
)

// Options is the parsed configuration.
type Options struct {
	Delimiter, Comment rune
	Header             bool
	Columns            []string
	Fields             []Field
	Trim, LazyQuotes   bool
	Ragged             bool
	DecimalComma       bool
	Encoding           string
	MaxRecords         int
}

// Field is one output key.
type Field struct {
	Column   string // header name, or 1-based position without a header
	Name     string
	Kind     records.Kind
	Required bool
	key      []byte // Name as a JSON string, with the colon
}

var optionKeys = []string{"delimiter", "comment", "header", "columns", "fields", "trim", "lazyQuotes", "ragged", "decimalComma", "encoding", "maxRecords"}

// ParseOptions reads a configuration (JSON).
func ParseOptions(raw []byte) (*Options, error) {
	o, err := records.Object(raw)
	if err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	if err := records.Keys("csv", o, optionKeys...); err != nil {
		return nil, err
	}
	opt := &Options{Delimiter: ',', Header: true, MaxRecords: records.DefaultMaxRecords}
	char := func(key string, dst *rune) error {
		s, err := records.Str(o, key)
		if err != nil || s == "" {
			return err
		}
		if s == `\t` {
			s = "\t"
		}
		r, n := utf8.DecodeRuneInString(s)
		if n != len(s) || r == utf8.RuneError || r == '"' || r == '\r' || r == '\n' {
			return fmt.Errorf("%s: want one character other than a quote or a line break", key)
		}
		*dst = r
		return nil
	}
	if err := char("delimiter", &opt.Delimiter); err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	if err := char("comment", &opt.Comment); err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	if opt.Comment == opt.Delimiter {
		return nil, errors.New("csv: comment and delimiter are the same character")
	}
	if o.Get("header") != nil {
		if opt.Header, err = records.Bool(o, "header"); err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
	}
	for _, kv := range []struct {
		key string
		dst *bool
	}{{"trim", &opt.Trim}, {"lazyQuotes", &opt.LazyQuotes}, {"ragged", &opt.Ragged}, {"decimalComma", &opt.DecimalComma}} {
		if *kv.dst, err = records.Bool(o, kv.key); err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
	}
	if opt.Encoding, err = records.Str(o, "encoding"); err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	if _, err := records.Decode(nil, opt.Encoding); err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	if o.Get("maxRecords") != nil {
		if opt.MaxRecords, err = records.Int(o, "maxRecords"); err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
	}
	if v := o.Get("columns"); v != nil {
		arr, err := v.Array()
		if err != nil {
			return nil, errors.New("csv: columns: want a list of names")
		}
		for _, c := range arr {
			b, err := c.StringBytes()
			if err != nil || len(b) == 0 {
				return nil, errors.New("csv: columns: want non-empty names")
			}
			opt.Columns = append(opt.Columns, string(b))
		}
	}
	if !opt.Header && len(opt.Columns) == 0 && o.Get("fields") == nil {
		return nil, errors.New("csv: without a header, name the columns (columns) or the fields (fields)")
	}
	if v := o.Get("fields"); v != nil {
		if opt.Fields, err = parseFields(v); err != nil {
			return nil, err
		}
	}
	return opt, nil
}

func parseFields(v *fastjson.Value) ([]Field, error) {
	arr, err := v.Array()
	if err != nil || len(arr) == 0 {
		return nil, errors.New("csv: fields: want a non-empty list")
	}
	var out []Field
	seen := map[string]bool{}
	for i, fv := range arr {
		where := fmt.Sprintf("csv: fields[%d]", i)
		o, err := fv.Object()
		if err != nil {
			return nil, fmt.Errorf("%s: want an object", where)
		}
		if err := records.Keys(where, o, "column", "name", "type", "required"); err != nil {
			return nil, err
		}
		var f Field
		if c := o.Get("column"); c != nil && c.Type() == fastjson.TypeNumber {
			n, err := c.Int()
			if err != nil || n < 1 {
				return nil, fmt.Errorf("%s: column: a position counts from 1", where)
			}
			f.Column = fmt.Sprint(n)
		} else if f.Column, err = records.Str(o, "column"); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if f.Name, err = records.Str(o, "name"); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if f.Column == "" && f.Name == "" {
			return nil, fmt.Errorf("%s: needs column or name", where)
		}
		if f.Column == "" {
			f.Column = f.Name
		}
		if f.Name == "" {
			f.Name = f.Column
		}
		if seen[f.Name] {
			return nil, fmt.Errorf("%s: name %q twice", where, f.Name)
		}
		seen[f.Name] = true
		t, err := records.Str(o, "type")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if f.Kind, err = records.ParseKind(t); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if f.Required, err = records.Bool(o, "required"); err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		out = append(out, f)
	}
	return out, nil
}

// codec serves the decoder for both the guest and the host.
var codec = records.NewCodec("csv", ParseOptions)

// Decode is the plugin's decode handler.
func Decode(in []byte, cfg guest.Config) ([]byte, error) { return codec.Handler(in, cfg) }

// Native runs the codec in the host's process; its Decode matches the
// file connector's Codec interface.
type Native struct{}

// Decode decodes in with the configuration cfg (JSON).
func (Native) Decode(ctx context.Context, in, cfg []byte) ([]byte, error) {
	return codec.Decode(ctx, in, cfg)
}

// column is where a field's value comes from.
type column struct {
	index int
	f     *Field
}

// Decode decodes a CSV file into a JSON array of objects.
func (opt *Options) Decode(in []byte) ([]byte, error) {
	text, err := records.Decode(in, opt.Encoding)
	if err != nil {
		return nil, fmt.Errorf("csv: %w", err)
	}
	r := csv.NewReader(strings.NewReader(text))
	r.Comma, r.Comment = opt.Delimiter, opt.Comment
	r.LazyQuotes, r.TrimLeadingSpace = opt.LazyQuotes, opt.Trim
	r.ReuseRecord = true
	r.FieldsPerRecord = -1
	names := opt.Columns
	if opt.Header {
		head, err := r.Read()
		if err == io.EOF {
			return []byte("[]"), nil
		}
		if err != nil {
			return nil, fmt.Errorf("csv: header: %w", err)
		}
		names = make([]string, len(head))
		for i, h := range head {
			names[i] = strings.TrimSpace(h)
		}
	}
	cols, err := opt.columns(names)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(in)+len(in)/2)
	out = append(out, '[')
	n := 0
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("csv: %w", err)
		}
		line, _ := r.FieldPos(0)
		if len(names) > 0 && len(rec) != len(names) && !opt.Ragged {
			return nil, fmt.Errorf("csv: line %d: %d fields, the header has %d (set ragged: true to accept)", line, len(rec), len(names))
		}
		if n >= opt.MaxRecords {
			return nil, fmt.Errorf("csv: more than %d records (maxRecords)", opt.MaxRecords)
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, '{')
		first := true
		for _, c := range cols {
			val := ""
			if c.index < len(rec) {
				val = rec[c.index]
			}
			if opt.Trim {
				val = strings.TrimSpace(val)
			}
			mark := len(out)
			if !first {
				out = append(out, ',')
			}
			out = append(out, c.f.key...)
			out, err = records.AppendValue(out, c.f.Kind, val, 0, opt.DecimalComma)
			switch {
			case errors.Is(err, records.ErrEmpty) || (err == nil && c.f.Kind == records.String && val == "" && c.index >= len(rec)):
				out = out[:mark]
				if c.f.Required {
					return nil, fmt.Errorf("csv: line %d: %s is required", line, c.f.Name)
				}
				continue
			case err != nil:
				return nil, fmt.Errorf("csv: line %d: %s: %w", line, c.f.Name, err)
			case c.f.Required && val == "":
				return nil, fmt.Errorf("csv: line %d: %s is required", line, c.f.Name)
			}
			first = false
		}
		out = append(out, '}')
	}
	return append(out, ']'), nil
}

// columns resolves the fields against the header (or columns) names.
func (opt *Options) columns(names []string) ([]column, error) {
	fields := opt.Fields
	if fields == nil {
		seen := map[string]bool{}
		for _, name := range names {
			if seen[name] {
				return nil, fmt.Errorf("csv: column %q twice in the header: name the columns with fields", name)
			}
			seen[name] = true
			fields = append(fields, Field{Column: name, Name: name})
		}
	}
	cols := make([]column, 0, len(fields))
	for i := range fields {
		f := fields[i]
		f.key = append(records.AppendKey(nil, f.Name), ':')
		idx := -1
		for j, name := range names {
			if name == f.Column {
				idx = j
				break
			}
		}
		if idx < 0 && len(names) == 0 {
			var pos int
			if _, err := fmt.Sscan(f.Column, &pos); err == nil && pos >= 1 {
				idx = pos - 1
			}
		}
		if idx < 0 {
			return nil, fmt.Errorf("csv: no column %q (there are: %s)", f.Column, strings.Join(names, ", "))
		}
		cols = append(cols, column{index: idx, f: &f})
	}
	return cols, nil
}
