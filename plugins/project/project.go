// Package project is the logic of the project plugin: it keeps only the
// values at the paths listed in its configuration, and the objects and
// arrays that contain them (jsonx's Keep).
//
//	config:
//	  keep: [enterpriseNumber, address.municipality, "directors[*].name"]
//
// Objects keep their keys' order; an array element with nothing kept in it
// is dropped, so indexes can change. When nothing matches, the result is {}
// (or [] for an array; null for a scalar document). Errors (the step fails):
// an empty or missing keep list, a malformed path, input that is not JSON.
package project

import (
	"errors"
	"fmt"

	"github.com/openfsb/fsb/sdk/guest"
	"github.com/openfsb/fsb/sdk/jsonx"
)

// Transform is the plugin's transform handler.
func Transform(in []byte, cfg guest.Config) ([]byte, error) {
	if err := cfg.Err(); err != nil {
		return nil, fmt.Errorf("project: %w", err)
	}
	return Project(in, cfg.Strings("keep"))
}

// Project keeps only the values at paths in the document in.
func Project(in []byte, paths []string) ([]byte, error) {
	if len(paths) == 0 {
		return nil, errors.New("project: config keep is missing or empty: list the paths of the values to keep")
	}
	for _, p := range paths {
		if _, err := jsonx.ParsePath(p); err != nil {
			return nil, fmt.Errorf("project: config keep: %w", err)
		}
	}
	doc, err := jsonx.Parse(in)
	if err != nil {
		return nil, fmt.Errorf("project: input: %w", err)
	}
	defer doc.Release()
	if err := doc.Keep(paths...); err != nil {
		return nil, fmt.Errorf("project: config keep: %w", err)
	}
	return doc.Marshal(), nil
}
