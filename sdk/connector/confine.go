package connector

import (
	"fmt"
	"path"
	"strings"
)

// Confine joins name to base (both slash-separated) and refuses a name
// that could leave base: an absolute name, a ".." element, a backslash, a
// NUL or another control character. "" and "." are base itself. It is pure
// string work: a server-side link can still point elsewhere, which a driver
// that can resolve links (SFTP's realpath) checks too.
func Confine(base, name string) (string, error) {
	if base == "" {
		base = "/"
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: %q is absolute", ErrOutsideBase, name)
	}
	for _, c := range name {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", fmt.Errorf("%w: %q holds a control character or a backslash", ErrOutsideBase, name)
		}
	}
	for _, el := range strings.Split(name, "/") {
		if el == ".." {
			return "", fmt.Errorf("%w: %q", ErrOutsideBase, name)
		}
	}
	return path.Join(base, name), nil
}

// Within reports whether p is base or below it (both cleaned, slash-separated).
func Within(base, p string) bool {
	base, p = path.Clean("/"+base), path.Clean("/"+p)
	return p == base || base == "/" || strings.HasPrefix(p, base+"/")
}
