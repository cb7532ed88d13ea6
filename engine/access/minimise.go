package access

import (
	"fmt"

	"github.com/openfsb/fsb/sdk/jsonx"
)

// Minimise reduces a JSON response body to the fields a grant releases
// (Decision.Fields) and reports which of those paths matched something
// (the released fields, for the audit record).
//
// Nil fields release the whole body unchanged, with released nil. Otherwise
// every value not selected by a path is removed, with the objects and
// arrays that contain selected values kept (sdk/jsonx Keep semantics: an
// array element with nothing selected in it is dropped); a body with
// nothing selected becomes {} (or [] for an array). A body that is not JSON
// is an error: the caller must then not send it (fail closed).
func Minimise(fields []string, body []byte) (out []byte, released []string, err error) {
	if fields == nil {
		return body, nil, nil
	}
	d, err := jsonx.Parse(body)
	if err != nil {
		return nil, nil, fmt.Errorf("minimise: the response is not JSON: %w", err)
	}
	defer d.Release()
	released = make([]string, 0, len(fields))
	for _, f := range fields {
		if d.Exists(f) {
			released = append(released, f)
		}
	}
	if err := d.Keep(fields...); err != nil {
		return nil, nil, fmt.Errorf("minimise: %w", err)
	}
	return d.Marshal(), released, nil
}
