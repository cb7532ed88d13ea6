package audit

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Hash is a SHA-256 value: a record digest or a chain hash. It marshals as
// lowercase hex.
type Hash [32]byte

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (h *Hash) UnmarshalText(b []byte) error {
	if hex.DecodedLen(len(b)) != len(h) {
		return fmt.Errorf("audit: hash: want %d hex characters, got %d", 2*len(h), len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// The chain: d(n) = SHA-256(record bytes of n), h(n) = SHA-256(h(n-1) || d(n)),
// h(0) = 32 zero bytes. Chaining digests rather than bytes lets a proof carry
// other records' digests without their content.

func recordDigest(b []byte) Hash { return sha256.Sum256(b) }

func link(prev, digest Hash) Hash {
	var buf [64]byte
	copy(buf[:32], prev[:])
	copy(buf[32:], digest[:])
	return sha256.Sum256(buf[:])
}

// Checkpoint is a signed statement of the chain head: record Seq has chain
// hash Head. The signature is Ed25519 over CheckpointMessage.
type Checkpoint struct {
	Seq       uint64    `json:"seq"`
	Head      Hash      `json:"head"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"sig"`
}

// Anchor is a signed statement that the chain kept after pruning starts at
// Seq, whose predecessor had chain hash Prev. The signature is Ed25519
// over AnchorMessage.
type Anchor struct {
	Seq       uint64    `json:"seq"`
	Prev      Hash      `json:"prev"`
	Time      time.Time `json:"time"`
	Signature []byte    `json:"sig"`
}

// CheckpointMessage is the exact byte string a checkpoint signs:
// "openfsb-audit-checkpoint-v1\x00" || seq (8 bytes big-endian) || head (32)
// || time (Unix nanoseconds, 8 bytes big-endian).
func CheckpointMessage(seq uint64, head Hash, t time.Time) []byte {
	return signedMessage("openfsb-audit-checkpoint-v1", seq, head, t)
}

// AnchorMessage is the exact byte string an anchor signs, laid out like
// CheckpointMessage with the tag "openfsb-audit-anchor-v1" and prev.
func AnchorMessage(seq uint64, prev Hash, t time.Time) []byte {
	return signedMessage("openfsb-audit-anchor-v1", seq, prev, t)
}

// RedactionMessage is the exact byte string a redaction signs: laid out
// like CheckpointMessage with the tag "openfsb-audit-redaction-v1", the
// record's digest d(seq) and time, then the service's name.
func RedactionMessage(seq uint64, digest Hash, t time.Time, service string) []byte {
	return append(signedMessage("openfsb-audit-redaction-v1", seq, digest, t), service...)
}

func signedMessage(tag string, seq uint64, h Hash, t time.Time) []byte {
	m := make([]byte, 0, len(tag)+1+8+32+8)
	m = append(m, tag...)
	m = append(m, 0)
	m = binary.BigEndian.AppendUint64(m, seq)
	m = append(m, h[:]...)
	m = binary.BigEndian.AppendUint64(m, uint64(t.UnixNano()))
	return m
}

// Valid reports whether c is signed by pub.
func (c Checkpoint) Valid(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, CheckpointMessage(c.Seq, c.Head, c.Time), c.Signature)
}

// Valid reports whether a is signed by pub.
func (a Anchor) Valid(pub ed25519.PublicKey) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, AnchorMessage(a.Seq, a.Prev, a.Time), a.Signature)
}

// signedRedaction reports whether e's redaction is signed by pub.
func signedRedaction(pub ed25519.PublicKey, e *entry) bool {
	return len(pub) == ed25519.PublicKeySize && ed25519.Verify(pub, RedactionMessage(e.seq, e.digest, e.time, e.service), e.sig)
}

func sign(s crypto.Signer, msg []byte) ([]byte, error) {
	sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("audit: sign: %w", err)
	}
	return sig, nil
}

// ReceiptHeader is the response header that carries a Receipt.
const ReceiptHeader = "OpenFSB-Audit-Receipt"

// Receipt names a record and its position in the chain: what a consumer
// keeps to ask for a Proof later.
type Receipt struct {
	Seq  uint64 `json:"seq"`
	Hash Hash   `json:"hash"` // the chain hash h(Seq)
}

// String is the header form: "seq=42; chain=<64 hex>".
func (r Receipt) String() string { return string(r.Append(nil)) }

// Append appends the header form to b (no allocation when b has room:
// ReceiptLen).
func (r Receipt) Append(b []byte) []byte {
	b = append(b, "seq="...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, "; chain="...)
	return hex.AppendEncode(b, r.Hash[:])
}

// ReceiptLen is the longest header form of a Receipt.
const ReceiptLen = len("seq=18446744073709551615; chain=") + 2*len(Hash{})

// ParseReceipt reads Receipt.String's form.
func ParseReceipt(s string) (Receipt, error) {
	var r Receipt
	var haveSeq, haveHash bool
	for part := range strings.SplitSeq(s, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return Receipt{}, fmt.Errorf("audit: receipt: %q is not key=value", part)
		}
		switch k {
		case "seq":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return Receipt{}, fmt.Errorf("audit: receipt: seq: %w", err)
			}
			r.Seq, haveSeq = n, true
		case "chain":
			if err := r.Hash.UnmarshalText([]byte(v)); err != nil {
				return Receipt{}, fmt.Errorf("audit: receipt: %w", err)
			}
			haveHash = true
		}
	}
	if !haveSeq || !haveHash {
		return Receipt{}, errors.New("audit: receipt: needs seq and chain")
	}
	return r, nil
}

// Proof shows that record Seq is in the chain up to a signed checkpoint.
//
// To check it (VerifyProof does exactly this): h := SHA-256(Prev || Digest)
// must equal Hash (and the consumer's Receipt); if Record is present,
// SHA-256(Record) must equal Digest; then for each d in Following,
// h = SHA-256(h || d); finally h must equal Checkpoint.Head, Checkpoint.Seq
// must be Seq + len(Following), and Checkpoint's Ed25519 signature over
// CheckpointMessage must verify with the operator's public key.
type Proof struct {
	Seq        uint64     `json:"seq"`
	Prev       Hash       `json:"prev"`   // h(Seq-1)
	Digest     Hash       `json:"digest"` // d(Seq)
	Hash       Hash       `json:"hash"`   // h(Seq)
	Record     []byte     `json:"record,omitempty"`
	Following  []Hash     `json:"following"` // d(Seq+1) … d(Checkpoint.Seq)
	Checkpoint Checkpoint `json:"checkpoint"`
}

// ErrBadProof is wrapped by every VerifyProof failure.
var ErrBadProof = errors.New("audit: proof does not verify")

// VerifyProof checks p against the operator's public key; see Proof.
func VerifyProof(pub ed25519.PublicKey, p Proof) error {
	if link(p.Prev, p.Digest) != p.Hash {
		return fmt.Errorf("%w: record %d: hash does not follow from prev and digest", ErrBadProof, p.Seq)
	}
	if p.Record != nil && recordDigest(p.Record) != p.Digest {
		return fmt.Errorf("%w: record %d: bytes do not match digest", ErrBadProof, p.Seq)
	}
	if p.Checkpoint.Seq != p.Seq+uint64(len(p.Following)) {
		return fmt.Errorf("%w: checkpoint %d is not %d records after %d", ErrBadProof, p.Checkpoint.Seq, len(p.Following), p.Seq)
	}
	h := p.Hash
	for _, d := range p.Following {
		h = link(h, d)
	}
	if h != p.Checkpoint.Head {
		return fmt.Errorf("%w: chain from %d does not reach checkpoint head %d", ErrBadProof, p.Seq, p.Checkpoint.Seq)
	}
	if !p.Checkpoint.Valid(pub) {
		return fmt.Errorf("%w: checkpoint %d: signature invalid", ErrBadProof, p.Checkpoint.Seq)
	}
	return nil
}
