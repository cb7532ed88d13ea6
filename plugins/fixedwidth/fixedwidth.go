// Package fixedwidth is the logic of the fixedwidth codec plugin: it
// decodes a file of fixed-width records (mainframe and payroll exports)
// into a JSON array of objects, with the field layout from its
// configuration. It only reshapes bytes: fetching the file is the host's
// (engine/connector/file).
//
//	config:
//	  fields:                                   # required
//	    - {name: recordType, start: 1, length: 2}
//	    - {name: ssin, start: 3, length: 11, required: true}
//	    - {name: name, start: 14, length: 30}
//	    - {name: amount, start: 44, length: 9, type: number, decimals: 2}
//	    - {name: active, start: 53, length: 1, type: boolean}
//	  match: {start: 1, length: 2, value: "01"} # keep only these records (a record type)
//	  recordLength: 0       # 0: one record per line (LF or CRLF); n: records of n characters, no separator
//	  skip: 1               # leading records to skip (a header)
//	  strict: false         # a record shorter than the layout is an error (default: the missing part is blank)
//	  encoding: utf-8       # or latin1
//	  maxRecords: 1000000
//
// Positions count characters from 1 (bytes for latin1 and ASCII). A
// field's text is trimmed of spaces on both sides unless trim says
// "left", "right" or "none". type is string (default), integer, number or
// boolean; number takes decimals, the count of implied decimal places
// ("000012345" with 2 is 123.45). A blank typed value is left out; a
// blank required one is an error. Blank lines are skipped.
package fixedwidth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/openfsb/fsb/plugins/internal/records"
	"github.com/openfsb/fsb/sdk/guest"
)

// Options is the parsed configuration.
type Options struct {
	Fields       []Field
	Match        *Match
	RecordLength int
	Skip         int
	Strict       bool
	Encoding     string
	MaxRecords   int
	width        int // the layout's extent: the end of its last field
}

// Field is one slice of a record.
type Field struct {
	Name          string
	Start, Length int // Start counts from 1
	Kind          records.Kind
	Decimals      int
	Trim          string // both (default), left, right, none
	Required      bool
	key           []byte
}

// Match keeps the records whose slice equals Value.
type Match struct {
	Start, Length int
	Value         string
}

// ParseOptions reads a configuration (JSON).
func ParseOptions(raw []byte) (*Options, error) {
	o, err := records.Object(raw)
	if err != nil {
		return nil, fmt.Errorf("fixedwidth: %w", err)
	}
	if err := records.Keys("fixedwidth", o, "fields", "match", "recordLength", "skip", "strict", "encoding", "maxRecords"); err != nil {
		return nil, err
	}
	opt := &Options{MaxRecords: records.DefaultMaxRecords}
	wrap := func(err error) error { return fmt.Errorf("fixedwidth: %w", err) }
	if opt.RecordLength, err = records.Int(o, "recordLength"); err != nil {
		return nil, wrap(err)
	}
	if opt.Skip, err = records.Int(o, "skip"); err != nil {
		return nil, wrap(err)
	}
	if opt.Strict, err = records.Bool(o, "strict"); err != nil {
		return nil, wrap(err)
	}
	if opt.Encoding, err = records.Str(o, "encoding"); err != nil {
		return nil, wrap(err)
	}
	if _, err := records.Decode(nil, opt.Encoding); err != nil {
		return nil, wrap(err)
	}
	if o.Get("maxRecords") != nil {
		if opt.MaxRecords, err = records.Int(o, "maxRecords"); err != nil {
			return nil, wrap(err)
		}
	}
	fv := o.Get("fields")
	if fv == nil {
		return nil, errors.New("fixedwidth: fields: the layout is required")
	}
	arr, err := fv.Array()
	if err != nil || len(arr) == 0 {
		return nil, errors.New("fixedwidth: fields: want a non-empty list")
	}
	seen := map[string]bool{}
	for i, v := range arr {
		where := fmt.Sprintf("fields[%d]", i)
		fo, err := v.Object()
		if err != nil {
			return nil, fmt.Errorf("fixedwidth: %s: want an object", where)
		}
		if err := records.Keys("fixedwidth: "+where, fo, "name", "start", "length", "type", "decimals", "trim", "required"); err != nil {
			return nil, err
		}
		var f Field
		var t string
		for _, step := range []func() error{
			func() (err error) { f.Name, err = records.Str(fo, "name"); return },
			func() (err error) { f.Start, err = records.Int(fo, "start"); return },
			func() (err error) { f.Length, err = records.Int(fo, "length"); return },
			func() (err error) { t, err = records.Str(fo, "type"); return },
			func() (err error) { f.Kind, err = records.ParseKind(t); return },
			func() (err error) { f.Decimals, err = records.Int(fo, "decimals"); return },
			func() (err error) { f.Trim, err = records.Str(fo, "trim"); return },
			func() (err error) { f.Required, err = records.Bool(fo, "required"); return },
		} {
			if err := step(); err != nil {
				return nil, fmt.Errorf("fixedwidth: %s: %w", where, err)
			}
		}
		switch {
		case f.Name == "":
			return nil, fmt.Errorf("fixedwidth: %s: name is required", where)
		case seen[f.Name]:
			return nil, fmt.Errorf("fixedwidth: %s: name %q twice", where, f.Name)
		case f.Start < 1 || f.Length < 1:
			return nil, fmt.Errorf("fixedwidth: %s (%s): start counts from 1 and length is at least 1", where, f.Name)
		case f.Decimals > 0 && f.Kind != records.Number:
			return nil, fmt.Errorf("fixedwidth: %s (%s): decimals need type number", where, f.Name)
		case f.Start > 1<<20 || f.Length > 1<<20:
			return nil, fmt.Errorf("fixedwidth: %s (%s): start or length too large", where, f.Name)
		}
		switch f.Trim {
		case "":
			f.Trim = "both"
		case "both", "left", "right", "none":
		default:
			return nil, fmt.Errorf("fixedwidth: %s (%s): trim %q: want both, left, right or none", where, f.Name, f.Trim)
		}
		seen[f.Name] = true
		f.key = append(records.AppendKey(nil, f.Name), ':')
		opt.width = max(opt.width, f.Start-1+f.Length)
		opt.Fields = append(opt.Fields, f)
	}
	if opt.RecordLength > 0 && opt.width > opt.RecordLength {
		return nil, fmt.Errorf("fixedwidth: the layout ends at %d, past recordLength %d", opt.width, opt.RecordLength)
	}
	if mv := o.Get("match"); mv != nil {
		mo, err := mv.Object()
		if err != nil {
			return nil, errors.New("fixedwidth: match: want an object")
		}
		if err := records.Keys("fixedwidth: match", mo, "start", "length", "value"); err != nil {
			return nil, err
		}
		m := &Match{}
		if m.Start, err = records.Int(mo, "start"); err != nil {
			return nil, wrap(err)
		}
		if m.Length, err = records.Int(mo, "length"); err != nil {
			return nil, wrap(err)
		}
		if m.Value, err = records.Str(mo, "value"); err != nil {
			return nil, wrap(err)
		}
		if m.Start < 1 || m.Length < 1 || utf8.RuneCountInString(m.Value) != m.Length || m.Start > 1<<20 || m.Length > 1<<20 {
			return nil, errors.New("fixedwidth: match: start from 1, and a value of length characters")
		}
		opt.Match = m
	}
	return opt, nil
}

// codec serves the decoder for both the guest and the host.
var codec = records.NewCodec("fixedwidth", ParseOptions)

// Decode is the plugin's decode handler.
func Decode(in []byte, cfg guest.Config) ([]byte, error) { return codec.Handler(in, cfg) }

// Native runs the codec in the host's process; its Decode matches the
// file connector's Codec interface.
type Native struct{}

// Decode decodes in with the configuration cfg (JSON).
func (Native) Decode(ctx context.Context, in, cfg []byte) ([]byte, error) {
	return codec.Decode(ctx, in, cfg)
}

// Decode decodes a file into a JSON array of objects.
func (opt *Options) Decode(in []byte) ([]byte, error) {
	text, err := records.Decode(in, opt.Encoding)
	if err != nil {
		return nil, fmt.Errorf("fixedwidth: %w", err)
	}
	out := make([]byte, 0, len(in)+len(in)/2)
	out = append(out, '[')
	n, recNo := 0, 0
	var runes []rune
	for len(text) > 0 {
		var rec string
		if opt.RecordLength > 0 {
			// Records of RecordLength characters; a trailing line break
			// after the last one is tolerated.
			if text == "\n" || text == "\r\n" {
				break
			}
			end, count := 0, 0
			for end < len(text) && count < opt.RecordLength {
				_, size := utf8.DecodeRuneInString(text[end:])
				end += size
				count++
			}
			rec, text = text[:end], text[end:]
		} else {
			i := strings.IndexByte(text, '\n')
			if i < 0 {
				rec, text = text, ""
			} else {
				rec, text = text[:i], text[i+1:]
			}
			rec = strings.TrimSuffix(rec, "\r")
			if strings.TrimSpace(rec) == "" {
				continue
			}
		}
		recNo++
		if recNo <= opt.Skip {
			continue
		}
		// Index by characters: a rune slice only when the record is not ASCII.
		ascii := true
		for i := 0; i < len(rec); i++ {
			if rec[i] >= 0x80 {
				ascii = false
				break
			}
		}
		length := len(rec)
		if !ascii {
			runes = append(runes[:0], []rune(rec)...)
			length = len(runes)
		}
		slice := func(start, l int) string {
			from, to := min(start-1, length), min(start-1+l, length)
			if ascii {
				return rec[from:to]
			}
			return string(runes[from:to])
		}
		if opt.Match != nil && slice(opt.Match.Start, opt.Match.Length) != opt.Match.Value {
			continue
		}
		if opt.Strict && length < opt.width {
			return nil, fmt.Errorf("fixedwidth: record %d: %d characters, the layout needs %d", recNo, length, opt.width)
		}
		if n >= opt.MaxRecords {
			return nil, fmt.Errorf("fixedwidth: more than %d records (maxRecords)", opt.MaxRecords)
		}
		if n > 0 {
			out = append(out, ',')
		}
		n++
		out = append(out, '{')
		first := true
		for i := range opt.Fields {
			f := &opt.Fields[i]
			val := slice(f.Start, f.Length)
			switch f.Trim {
			case "both":
				val = strings.TrimSpace(val)
			case "left":
				val = strings.TrimLeft(val, " \t")
			case "right":
				val = strings.TrimRight(val, " \t")
			}
			mark := len(out)
			if !first {
				out = append(out, ',')
			}
			out = append(out, f.key...)
			out, err = records.AppendValue(out, f.Kind, val, f.Decimals, false)
			switch {
			case errors.Is(err, records.ErrEmpty):
				out = out[:mark]
				if f.Required {
					return nil, fmt.Errorf("fixedwidth: record %d: %s is required", recNo, f.Name)
				}
				continue
			case err != nil:
				return nil, fmt.Errorf("fixedwidth: record %d: %s: %w", recNo, f.Name, err)
			case f.Required && strings.TrimSpace(val) == "":
				return nil, fmt.Errorf("fixedwidth: record %d: %s is required", recNo, f.Name)
			}
			first = false
		}
		out = append(out, '}')
	}
	return append(out, ']'), nil
}
