// Command example is the upper plugin: it upper-cases the string values at
// the paths listed in its configuration's fields, e.g.
//
//	config:
//	  fields: [name, "address.city", "children[*].name"]
//
// Paths use the syntax of github.com/openfsb/fsb/sdk/jsonx. Values that are
// not strings are left alone; a path that matches no string is logged at
// debug level.
//
// Build it as a plugin with
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -o upper.wasm ./sdk/example
package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/openfsb/fsb/sdk/guest"
	"github.com/openfsb/fsb/sdk/jsonx"
)

func init() {
	guest.Transform(upper)
}

func upper(in []byte, cfg guest.Config) ([]byte, error) {
	fields := cfg.Strings("fields")
	if len(fields) == 0 {
		if err := cfg.Err(); err != nil {
			return nil, err
		}
		return nil, errors.New("upper: config fields is missing: list the paths of the strings to upper-case")
	}
	doc, err := jsonx.Parse(in)
	if err != nil {
		return nil, fmt.Errorf("upper: input: %w", err)
	}
	defer doc.Release()
	for _, f := range fields {
		n, err := doc.UpdateStrings(f, strings.ToUpper)
		if err != nil {
			return nil, fmt.Errorf("upper: config fields: %w", err)
		}
		if n == 0 {
			guest.Log(guest.LevelDebug, "upper: no string at "+f)
		}
	}
	return doc.Marshal(), nil
}

func main() {}
