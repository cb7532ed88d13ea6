package spec

import (
	"fmt"
	"sort"
	"strings"
)

// Pos is a position in a configuration file; Line and Col are 1-based.
type Pos struct {
	File string
	Line int
	Col  int
}

func (p Pos) String() string {
	if p.Line == 0 {
		return p.File
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
}

// Error is one problem found in a configuration file. Line holds the text of
// the offending source line (empty when unknown) so the error can be shown
// without re-reading the file.
type Error struct {
	Pos  Pos
	Msg  string
	Line string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// Snippet renders the error with its source line and a caret under the column.
func (e *Error) Snippet() string {
	var b strings.Builder
	b.WriteString(e.Error())
	if e.Line != "" {
		fmt.Fprintf(&b, "\n  %4d | %s\n       | %s^", e.Pos.Line, strings.ReplaceAll(e.Line, "\t", " "), strings.Repeat(" ", max(e.Pos.Col-1, 0)))
	}
	return b.String()
}

// ErrorList collects every error of a load or compile; it is an error itself.
type ErrorList []*Error

func (l ErrorList) Error() string {
	switch len(l) {
	case 0:
		return "no errors"
	case 1:
		return l[0].Error()
	}
	return fmt.Sprintf("%s (and %d more errors)", l[0].Error(), len(l)-1)
}

// Sort orders errors by file, line and column, dropping exact duplicates.
func (l *ErrorList) Sort() {
	s := *l
	sort.SliceStable(s, func(i, j int) bool {
		a, b := s[i].Pos, s[j].Pos
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	out := s[:0]
	for i, e := range s {
		if i > 0 && e.Pos == s[i-1].Pos && e.Msg == s[i-1].Msg {
			continue
		}
		out = append(out, e)
	}
	*l = out
}

// Err returns the list as an error, or nil when it is empty.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Sources keeps the lines of every loaded file so that errors found after
// decoding (by the flow compiler) can show their source line too.
type Sources map[string][]string

// Errorf builds an Error at pos with the source line filled in.
func (s Sources) Errorf(pos Pos, format string, args ...any) *Error {
	e := &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)}
	if lines := s[pos.File]; pos.Line >= 1 && pos.Line <= len(lines) {
		e.Line = lines[pos.Line-1]
	}
	return e
}
