package guest

// HMAC computes HMAC-SHA256 under one key. In a guest the host computes it
// (fsb.hmac_sha256, sdk/ABI.md): SHA-256 compiled to WebAssembly runs ~50×
// slower than the CPU's SHA instructions the host uses. Natively it is
// crypto/hmac. An HMAC is not safe for concurrent use.
type HMAC struct {
	key []byte
	mac macState // native: the keyed crypto/hmac state
}

// NewHMAC returns an HMAC under key (copied).
func NewHMAC(key []byte) *HMAC {
	h := &HMAC{key: append([]byte(nil), key...)}
	h.mac = newMACState(h.key)
	return h
}

// Sum writes HMAC-SHA256(key, msg) to out.
func (h *HMAC) Sum(msg []byte, out *[32]byte) { h.mac.sum(h.key, msg, out) }
