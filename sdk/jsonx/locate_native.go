//go:build !wasip1

package jsonx

func (l *Locator) locate(data []byte, dst []Span) ([]Span, error) {
	return locateNative(data, l.paths, dst)
}
