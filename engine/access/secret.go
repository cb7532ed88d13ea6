package access

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"strings"
)

// SecretHash is how an OAuth client secret is stored: never the secret,
// only HMAC-SHA-256 keyed with a random per-secret salt. Alg names the
// scheme so that a later version can change it and still read old records.
//
// Why not a slow KDF (PBKDF2, scrypt): slow hashing protects low-entropy,
// human-chosen passwords. Client secrets are generated here with 256 bits
// from crypto/rand and never chosen by people, so an offline guess is
// hopeless with or without stretching, while stretching would make every
// token request cost milliseconds of CPU and the token endpoint a cheap
// denial-of-service target. See README.md.
type SecretHash struct {
	Alg  string `json:"alg"` // "hmac-sha256"
	Salt []byte `json:"salt"`
	Sum  []byte `json:"sum"`
}

const secretAlg = "hmac-sha256"

// secretPrefix marks generated secrets so that secret scanners find them.
const secretPrefix = "fsbs_"

// newSecret returns a fresh client secret and its hash.
func newSecret() (string, *SecretHash) {
	b := make([]byte, 32)
	rand.Read(b)
	secret := secretPrefix + base64.RawURLEncoding.EncodeToString(b)
	salt := make([]byte, 16)
	rand.Read(salt)
	return secret, &SecretHash{Alg: secretAlg, Salt: salt, Sum: secretSum(salt, secret)}
}

func secretSum(salt []byte, secret string) []byte {
	m := hmac.New(sha256.New, salt)
	m.Write([]byte(secret))
	return m.Sum(nil)
}

// matches compares in constant time. A nil hash (unknown client) is
// compared against a dummy so that the time does not say whether the
// client exists.
func (h *SecretHash) matches(secret string) bool {
	if h == nil || h.Alg != secretAlg {
		subtle.ConstantTimeCompare(secretSum(dummySalt, secret), dummySum)
		return false
	}
	return subtle.ConstantTimeCompare(secretSum(h.Salt, secret), h.Sum) == 1
}

var dummySalt = make([]byte, 16)
var dummySum = secretSum(dummySalt, "")

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newID returns prefix + 16 random base32 characters (80 bits).
func newID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + strings.ToLower(idEncoding.EncodeToString(b))
}

// ID prefixes say what a record is, so that Suspend, Resume and Revoke take
// any id. Organisations are named by their enterprise number.
const (
	appPrefix   = "app_"
	credPrefix  = "crd_"
	grantPrefix = "grt_"
)
