package trace

import (
	"context"
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

type otherKey struct{}

func TestWithCall(t *testing.T) {
	base := context.WithValue(context.Background(), otherKey{}, "kept")
	if c := CallOf(base); c != (Call{}) {
		t.Fatalf("CallOf a context without one: %+v", c)
	}
	ctx, cancel := context.WithCancel(base)
	outer := WithCall(ctx, Call{TraceID: "t1", Step: "a"})
	inner := WithCall(outer, Call{TraceID: "t1", Step: "b"})
	for _, tc := range []struct {
		ctx  context.Context
		want Call
	}{{outer, Call{"t1", "a"}}, {inner, Call{"t1", "b"}}} {
		if got := CallOf(tc.ctx); got != tc.want {
			t.Errorf("CallOf = %+v, want %+v", got, tc.want)
		}
		if tc.ctx.Value(otherKey{}) != "kept" {
			t.Error("other values are lost")
		}
	}
	// A reused CallContext answers with what it holds now.
	var cc CallContext
	cc.Context, cc.Call = base, Call{TraceID: "t2", Step: "x"}
	if got := CallOf(&cc); got.TraceID != "t2" || got.Step != "x" {
		t.Errorf("CallContext: %+v", got)
	}
	cc.Call.Step = "y"
	if CallOf(&cc).Step != "y" {
		t.Error("CallContext does not answer its current Call")
	}
	// Cancellation, deadline and Done come from the wrapped context.
	cancel()
	if inner.Err() != context.Canceled || inner.Done() == nil {
		t.Errorf("Err %v", inner.Err())
	}
	if _, ok := inner.Deadline(); ok {
		t.Error("a deadline from nowhere")
	}
}
