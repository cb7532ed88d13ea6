package audit

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
)

// Key is a secret with an id recorded next to what it produced, so that
// keys can rotate: the first key of a list writes, every key reads.
type Key struct {
	ID     string
	Secret []byte
}

// SealedBody is a request or response body encrypted with AES-256-GCM.
// The additional data binds it to its call and part, so a body cannot be
// moved to another record unnoticed.
type SealedBody struct {
	Alg   string `json:"alg"` // "A256GCM"
	KeyID string `json:"kid"`
	Nonce []byte `json:"nonce"`
	Data  []byte `json:"data"`
}

// BodyPart names which body of a call.
type BodyPart string

// The body parts.
const (
	RequestBodyPart  BodyPart = "request"
	ResponseBodyPart BodyPart = "response"
)

const algA256GCM = "A256GCM"

func bodyAAD(call string, part BodyPart) []byte {
	return []byte("openfsb-audit-body-v1\x00" + call + "\x00" + string(part))
}

func seal(k Key, call string, part BodyPart, plain []byte) (*SealedBody, error) {
	aead, err := newGCM(k.Secret)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("audit: nonce: %w", err)
	}
	return &SealedBody{Alg: algA256GCM, KeyID: k.ID, Nonce: nonce, Data: aead.Seal(nil, nonce, plain, bodyAAD(call, part))}, nil
}

func newGCM(secret []byte) (cipher.AEAD, error) {
	if len(secret) != 32 {
		return nil, fmt.Errorf("audit: body key must be 32 bytes, got %d", len(secret))
	}
	b, err := aes.NewCipher(secret)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

// ErrNoBody means the record holds no body of that part.
var ErrNoBody = errors.New("audit: no stored body")

// OpenBody decrypts a stored body of r with the key among keys whose id it
// names.
func OpenBody(keys []Key, r *Record, part BodyPart) ([]byte, error) {
	b := r.RequestBody
	if part == ResponseBodyPart {
		b = r.ResponseBody
	}
	if b == nil {
		return nil, ErrNoBody
	}
	if b.Alg != algA256GCM {
		return nil, fmt.Errorf("audit: body: unknown algorithm %q", b.Alg)
	}
	for _, k := range keys {
		if k.ID != b.KeyID {
			continue
		}
		aead, err := newGCM(k.Secret)
		if err != nil {
			return nil, err
		}
		if len(b.Nonce) != aead.NonceSize() {
			return nil, errors.New("audit: body: bad nonce")
		}
		plain, err := aead.Open(nil, b.Nonce, b.Data, bodyAAD(r.Call, part))
		if err != nil {
			return nil, fmt.Errorf("audit: body: %w", err)
		}
		return plain, nil
	}
	return nil, fmt.Errorf("audit: body: no key %q", b.KeyID)
}

// Pseudonym returns the subject pseudonym records store: HMAC-SHA-256 of the
// identifier under k, written "hmac-sha256:<keyID>:<hex>".
func Pseudonym(k Key, subject string) string {
	m := hmac.New(sha256.New, k.Secret)
	m.Write([]byte(subject))
	return "hmac-sha256:" + k.ID + ":" + hex.EncodeToString(m.Sum(nil))
}

// pseudonymiser is Pseudonym under one key with pooled HMAC states: the
// store pseudonymises every request's subject, and hmac.New allocates and
// hashes the key pads each time.
type pseudonymiser struct {
	prefix string // "hmac-sha256:<keyID>:"
	pool   sync.Pool
}

func newPseudonymiser(k Key) *pseudonymiser {
	p := &pseudonymiser{prefix: "hmac-sha256:" + k.ID + ":"}
	secret := bytes.Clone(k.Secret)
	p.pool.New = func() any { return hmac.New(sha256.New, secret) }
	return p
}

// of returns Pseudonym(k, subject).
func (p *pseudonymiser) of(subject string) string {
	m := p.pool.Get().(hash.Hash)
	m.Reset()
	io.WriteString(m, subject)
	var sum [sha256.Size]byte
	m.Sum(sum[:0])
	p.pool.Put(m)
	b := make([]byte, len(p.prefix)+hex.EncodedLen(len(sum)))
	copy(b, p.prefix)
	hex.Encode(b[len(p.prefix):], sum[:])
	return string(b)
}
