package trace

import (
	"regexp"
	"strings"
	"sync"
	"testing"
)

func TestNewID(t *testing.T) {
	hex32 := regexp.MustCompile(`^[0-9a-f]{32}$`)
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 2500 {
				id := NewID()
				mu.Lock()
				if !hex32.MatchString(id) || seen[id] {
					t.Errorf("bad or repeated id %q", id)
				}
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

func TestValid(t *testing.T) {
	for id, want := range map[string]bool{
		"":                             false,
		"abc-DEF_0.9":                  true,
		strings.Repeat("a", MaxLen):    true,
		strings.Repeat("a", MaxLen+1):  false,
		"with space":                   false,
		"new\nline":                    false,
		"semi;colon":                   false,
		"12345678-1234-1234-1234-1234": true,
	} {
		if got := Valid(id); got != want {
			t.Errorf("Valid(%q) = %v, want %v", id, got, want)
		}
	}
}
