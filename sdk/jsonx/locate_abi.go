package jsonx

import (
	"encoding/binary"
	"errors"

	"github.com/valyala/fastjson"
)

// The fsb.json_locate host function (sdk/ABI.md) in both directions: the
// guest side writes its paths with AppendPaths and reads spans; the host
// side reads the paths with ParsePathList and writes spans with
// AppendSpans.

// Results of fsb.json_locate besides a length.
const (
	LocateInvalidJSON  = -1 // the document is not valid JSON
	LocateInvalidPaths = -2 // the path list is malformed
)

// AppendPaths appends paths as the JSON array of their canonical strings.
func AppendPaths(dst []byte, paths []Path) []byte {
	dst = append(dst, '[')
	for i, p := range paths {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = AppendString(dst, p.String())
	}
	return append(dst, ']')
}

// ParsePathList reads what AppendPaths writes.
func ParsePathList(data []byte) ([]Path, error) {
	var p fastjson.Parser
	v, err := p.ParseBytes(data)
	if err != nil {
		return nil, err
	}
	items, err := v.Array()
	if err != nil {
		return nil, err
	}
	paths := make([]Path, len(items))
	for i, it := range items {
		s, err := it.StringBytes()
		if err != nil {
			return nil, errors.New("jsonx: a path list holds strings")
		}
		if paths[i], err = ParsePath(string(s)); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// AppendSpans appends spans as little-endian uint32 triples: start, end,
// kind.
func AppendSpans(dst []byte, spans []Span) []byte {
	for _, s := range spans {
		dst = binary.LittleEndian.AppendUint32(dst, uint32(s.Start))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(s.End))
		dst = binary.LittleEndian.AppendUint32(dst, uint32(s.Kind))
	}
	return dst
}
