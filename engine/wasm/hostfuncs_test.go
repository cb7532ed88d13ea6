package wasm

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/openfsb/fsb/sdk/jsonx"
)

// TestJSONLocateAndHMAC drives fsb.json_locate and fsb.hmac_sha256 from a
// hand-written guest (locate.wat): the answers are jsonx.Locate's and
// crypto/hmac's, bad pointers trap the call, invalid JSON is reported.
func TestJSONLocateAndHMAC(t *testing.T) {
	h := newHost(t, nil)
	m := load(t, h, specOf(t, "locate"))
	ctx := context.Background()

	doc := `{"a":1,"b":[true,"x"],"c":{"a":2}}`
	out, err := m.Call(ctx, "transform", []byte(doc), nil)
	if err != nil {
		t.Fatal(err)
	}
	spans, _ := jsonx.Locate([]byte(doc), jsonx.MustPath("a"), jsonx.MustPath("b[*]"))
	if want := jsonx.AppendSpans(nil, spans); string(out) != string(want) || len(spans) != 3 {
		t.Errorf("spans %x, want %x (%v)", out, want, spans)
	}

	out, err = m.Call(ctx, "transform", []byte("#85073003328"), nil)
	mac := hmac.New(sha256.New, []byte("k"))
	mac.Write([]byte("#85073003328"))
	if err != nil || string(out) != string(mac.Sum(nil)) {
		t.Errorf("hmac %x, %v", out, err)
	}

	_, err = m.Call(ctx, "transform", []byte("!{}"), nil)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrTrap) || !strings.Contains(e.Detail, "fsb.json_locate: input at 0xfffffff0 (3 bytes) lies outside memory") {
		t.Errorf("bad pointer: %v", err)
	}
	if _, err := m.Call(ctx, "transform", []byte(`{"a":`), nil); !errors.Is(err, ErrGuest) {
		t.Errorf("invalid JSON: %v", err)
	}
}
