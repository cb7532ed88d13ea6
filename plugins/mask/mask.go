// Package mask is the logic of the mask plugin: it pseudonymises or redacts
// the values at the paths listed in its configuration.
//
//	config:
//	  paths: [ssin, "directors[*]", "person.ssin"]
//	  mode: hmac          # or redact
//	  key: <secret>       # hmac only: the HMAC-SHA256 key
//	  keyId: k1           # hmac only: names the key in every pseudonym
//
// In hmac mode a string s becomes
//
//	"hmac:" + keyId + ":" + base64url(HMAC-SHA256(key, s))[:22]
//
// (no padding; 22 characters carry 132 bits), so the same value always gives
// the same pseudonym under one key and keyId. A number is pseudonymised from
// its JSON text (42 as "42"; 4.2e1 and 42 differ). In redact mode strings,
// numbers and booleans become "***".
//
// In both modes null, objects and arrays are left as they are: to mask the
// elements of an array, select them ("directors[*]", "children[*].ssin").
// Booleans are kept in hmac mode (two values cannot be pseudonymised).
// Paths that match nothing are ignored; a value that several paths select is
// masked once. Paths use the syntax of
// github.com/openfsb/fsb/sdk/jsonx.
//
// Errors (the step fails): no paths, a malformed path, a mode other than hmac
// or redact, hmac without key or keyId (or a keyId holding ':'), input that
// is not JSON.
package mask

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/openfsb/fsb/sdk/guest"
	"github.com/openfsb/fsb/sdk/jsonx"
	"github.com/valyala/fastjson"
)

// Modes.
const (
	ModeHMAC   = "hmac"
	ModeRedact = "redact"
)

// Redacted replaces each value in redact mode.
const Redacted = "***"

// PseudonymLen is the number of base64url characters of the MAC kept.
const PseudonymLen = 22

// Options is the parsed configuration.
type Options struct {
	Paths []string
	Mode  string
	Key   []byte
	KeyID string
}

// OptionsFrom reads and checks the configuration.
func OptionsFrom(cfg guest.Config) (Options, error) {
	if err := cfg.Err(); err != nil {
		return Options{}, fmt.Errorf("mask: %w", err)
	}
	o := Options{
		Paths: cfg.Strings("paths"),
		Mode:  cfg.String("mode"),
		Key:   []byte(cfg.String("key")),
		KeyID: cfg.String("keyId"),
	}
	return o, o.Check()
}

// Check reports what is wrong with o.
func (o Options) Check() error {
	if len(o.Paths) == 0 {
		return errors.New("mask: config paths is missing: list the paths of the values to mask")
	}
	for _, p := range o.Paths {
		if _, err := jsonx.ParsePath(p); err != nil {
			return fmt.Errorf("mask: config paths: %w", err)
		}
	}
	switch o.Mode {
	case ModeHMAC:
		if len(o.Key) == 0 {
			return errors.New("mask: config key is missing: hmac mode needs a secret key")
		}
		if o.KeyID == "" {
			return errors.New("mask: config keyId is missing: hmac mode names its key in each pseudonym")
		}
		if strings.Contains(o.KeyID, ":") {
			return fmt.Errorf("mask: config keyId %q must not contain ':'", o.KeyID)
		}
	case ModeRedact:
	case "":
		return errors.New(`mask: config mode is missing: "hmac" or "redact"`)
	default:
		return fmt.Errorf(`mask: config mode %q: want "hmac" or "redact"`, o.Mode)
	}
	return nil
}

// Transform is the plugin's transform handler.
func Transform(in []byte, cfg guest.Config) ([]byte, error) {
	p, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	mac := p.macs.Get().(*pseudonymiser)
	defer p.macs.Put(mac)
	return mask(in, p.opts, mac)
}

// prepared is what one configuration gives: its checked options and keyed
// HMACs ready to use. A flow step calls the plugin with the same
// configuration every time, so the last one is kept: its JSON is not parsed,
// nor its paths checked, nor its key expanded, again (in the sandbox that
// was a third of a 1 KiB call).
type prepared struct {
	raw  string
	opts Options
	macs sync.Pool // *pseudonymiser with the key set
}

var last atomic.Pointer[prepared]

func prepare(cfg guest.Config) (*prepared, error) {
	raw := cfg.Raw()
	if p := last.Load(); p != nil && raw != nil && p.raw == string(raw) {
		return p, nil
	}
	o, err := OptionsFrom(cfg)
	if err != nil {
		return nil, err
	}
	p := &prepared{raw: string(raw), opts: o}
	p.macs.New = func() any { return newPseudonymiser(o.Key, o.KeyID) }
	last.Store(p)
	return p, nil
}

// Mask masks the document in according to o.
func Mask(in []byte, o Options) ([]byte, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	return mask(in, o, newPseudonymiser(o.Key, o.KeyID))
}

// mask masks in according to o, which has been checked; p serves hmac mode.
func mask(in []byte, o Options, p *pseudonymiser) ([]byte, error) {
	doc, err := jsonx.Parse(in)
	if err != nil {
		return nil, fmt.Errorf("mask: input: %w", err)
	}
	defer doc.Release()

	var fn func(v *fastjson.Value) *fastjson.Value
	if o.Mode == ModeRedact {
		var redacted *fastjson.Value
		fn = func(v *fastjson.Value) *fastjson.Value {
			switch v.Type() {
			case fastjson.TypeString, fastjson.TypeNumber, fastjson.TypeTrue, fastjson.TypeFalse:
				if redacted == nil {
					redacted = doc.NewString(Redacted)
				}
				return redacted // Update stores one value in several places: fine, it is never changed
			}
			return v
		}
	} else {
		var made map[*fastjson.Value]bool // pseudonyms, not to hash again when paths overlap
		if len(o.Paths) > 1 {
			made = make(map[*fastjson.Value]bool)
		}
		fn = func(v *fastjson.Value) *fastjson.Value {
			if made[v] {
				return v
			}
			var b []byte
			switch v.Type() {
			case fastjson.TypeString:
				b, _ = v.StringBytes()
			case fastjson.TypeNumber:
				b = v.MarshalTo(p.scratch[:0])
			default:
				return v
			}
			nv := doc.NewString(p.pseudonym(b))
			if made != nil {
				made[nv] = true
			}
			return nv
		}
	}
	for _, path := range o.Paths {
		if _, err := doc.Update(path, fn); err != nil {
			return nil, fmt.Errorf("mask: config paths: %w", err)
		}
	}
	return doc.Marshal(), nil
}

type pseudonymiser struct {
	mac     hash.Hash
	prefix  string
	sum     [sha256.Size]byte
	enc     [44]byte
	out     []byte
	scratch [32]byte
}

func newPseudonymiser(key []byte, keyID string) *pseudonymiser {
	p := &pseudonymiser{mac: hmac.New(sha256.New, key), prefix: "hmac:" + keyID + ":"}
	p.out = make([]byte, 0, len(p.prefix)+PseudonymLen)
	return p
}

func (p *pseudonymiser) pseudonym(b []byte) string {
	p.mac.Reset()
	p.mac.Write(b)
	sum := p.mac.Sum(p.sum[:0])
	base64.RawURLEncoding.Encode(p.enc[:], sum)
	p.out = append(append(p.out[:0], p.prefix...), p.enc[:PseudonymLen]...)
	return string(p.out)
}

// Pseudonym returns the pseudonym of s under key and keyID, as Mask writes it.
func Pseudonym(key []byte, keyID, s string) string {
	return newPseudonymiser(key, keyID).pseudonym([]byte(s))
}
