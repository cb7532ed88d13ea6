package guest

import (
	"crypto/hmac"
	"crypto/sha256"
	"testing"
)

func TestHMAC(t *testing.T) {
	key := []byte("k")
	h := NewHMAC(key)
	key[0] = 'x' // NewHMAC copied it
	for _, msg := range []string{"", "85073003328", "a longer message than one block of sixty-four bytes, to be sure of it"} {
		var got [32]byte
		h.Sum([]byte(msg), &got)
		m := hmac.New(sha256.New, []byte("k"))
		m.Write([]byte(msg))
		if want := m.Sum(nil); string(got[:]) != string(want) {
			t.Errorf("%q: %x, want %x", msg, got, want)
		}
	}
}
