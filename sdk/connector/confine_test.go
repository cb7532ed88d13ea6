package connector_test

import (
	"errors"
	"testing"

	"github.com/openfsb/fsb/sdk/connector"
)

func TestConfine(t *testing.T) {
	for _, c := range []struct{ base, name, want string }{
		{"/data", "", "/data"}, {"/data", ".", "/data"}, {"/data", "a.csv", "/data/a.csv"},
		{"/data", "in/./a.csv", "/data/in/a.csv"}, {"", "a", "/a"}, {".", "a", "a"},
	} {
		got, err := connector.Confine(c.base, c.name)
		if err != nil || got != c.want {
			t.Errorf("Confine(%q, %q) = %q, %v; want %q", c.base, c.name, got, err, c.want)
		}
	}
	for _, name := range []string{"..", "../a", "in/../../a", "/etc/passwd", `a\..\b`, "a\x00b", "a\r\nDELE b", "a/..", "x\x7f"} {
		if got, err := connector.Confine("/data", name); !errors.Is(err, connector.ErrOutsideBase) {
			t.Errorf("Confine(/data, %q) = %q, %v", name, got, err)
		}
	}
	for _, c := range []struct {
		base, p string
		in      bool
	}{{"/data", "/data", true}, {"/data", "/data/a", true}, {"/data", "/database", false}, {"/data", "/", false}, {"/", "/x", true}, {"/data/", "/data/x/../../etc", false}} {
		if got := connector.Within(c.base, c.p); got != c.in {
			t.Errorf("Within(%q, %q) = %v", c.base, c.p, got)
		}
	}
}
