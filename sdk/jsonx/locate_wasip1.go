//go:build wasip1

package jsonx

import (
	"errors"
	"unsafe"
)

// In a guest, Locate asks the host (sdk/ABI.md, fsb.json_locate), which
// runs locateNative on the guest's bytes in place.

//go:wasmimport fsb json_locate
//go:noescape
func fsbJSONLocate(in unsafe.Pointer, inLen uint32, paths unsafe.Pointer, pathsLen uint32, out unsafe.Pointer, outCap uint32) int32

func (l *Locator) locate(data []byte, dst []Span) ([]Span, error) {
	if l.buf == nil {
		l.buf = make([]uint32, 3*32)
	}
	for range 3 {
		n := fsbJSONLocate(unsafe.Pointer(unsafe.SliceData(data)), uint32(len(data)),
			unsafe.Pointer(unsafe.SliceData(l.list)), uint32(len(l.list)),
			unsafe.Pointer(unsafe.SliceData(l.buf)), uint32(4*len(l.buf)))
		switch {
		case n == LocateInvalidJSON:
			if err := validate(data); err != nil {
				return dst, err // the offset and reason, found again here
			}
			return dst, errors.New("jsonx: the host found the document invalid")
		case n < 0:
			return dst, errors.New("jsonx: the host could not read the paths")
		case int(n) > 4*len(l.buf):
			l.buf = make([]uint32, n/4)
			continue
		}
		for i := range int(n) / 12 {
			dst = append(dst, Span{Start: int(l.buf[3*i]), End: int(l.buf[3*i+1]), Kind: Kind(l.buf[3*i+2])})
		}
		return dst, nil
	}
	return dst, errors.New("jsonx: the host kept asking for a bigger buffer")
}
