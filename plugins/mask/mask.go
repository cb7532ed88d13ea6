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
// The output is the input byte for byte (white space, escapes, key order)
// but for the values replaced; every member of a repeated key is masked.
// The document is read once and no tree is built (jsonx.Locate, which the
// host runs natively for a module; the HMACs too, guest.HMAC).
//
// Errors (the step fails): no paths, a malformed path, a mode other than hmac
// or redact, hmac without key or keyId (or a keyId holding ':'), input that
// is not JSON.
package mask

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/openfsb/fsb/sdk/guest"
	"github.com/openfsb/fsb/sdk/jsonx"
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
	if _, err := o.parsePaths(); err != nil {
		return fmt.Errorf("mask: config paths: %w", err)
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
	w := p.workers.Get().(*worker)
	defer p.workers.Put(w)
	return w.mask(in)
}

// prepared is what one configuration gives: its checked options and
// workers holding the parsed paths and the keyed HMAC. A flow step calls
// the plugin with the same configuration every time, so the last one is
// kept: its JSON is not parsed, nor its paths, nor its key expanded, again.
type prepared struct {
	raw     string
	workers sync.Pool // *worker
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
	p := &prepared{raw: string(raw)}
	p.workers.New = func() any { return newWorker(o) }
	last.Store(p)
	return p, nil
}

// Mask masks the document in according to o.
func Mask(in []byte, o Options) ([]byte, error) {
	if err := o.Check(); err != nil {
		return nil, err
	}
	return newWorker(o).mask(in)
}

func (o Options) parsePaths() ([]jsonx.Path, error) {
	paths := make([]jsonx.Path, len(o.Paths))
	for i, s := range o.Paths {
		var err error
		if paths[i], err = jsonx.ParsePath(s); err != nil {
			return nil, err
		}
	}
	return paths, nil
}

// worker masks documents for one checked configuration; not safe for
// concurrent use.
type worker struct {
	redact bool
	loc    *jsonx.Locator
	mac    *guest.HMAC
	quoted []byte // `"hmac:<keyId>:`, the JSON start of every pseudonym
	sum    [32]byte
	enc    [44]byte
	value  []byte
}

func newWorker(o Options) *worker {
	paths, _ := o.parsePaths() // o is checked
	w := &worker{redact: o.Mode == ModeRedact, loc: jsonx.NewLocator(paths...)}
	if !w.redact {
		w.mac = guest.NewHMAC(o.Key)
		w.quoted = jsonx.AppendString(nil, "hmac:"+o.KeyID+":")
		w.quoted = w.quoted[:len(w.quoted)-1] // without the closing quote
	}
	return w
}

// mask copies in, replacing the values the paths select. It reads the
// document once (jsonx.Locate, run by the host in the sandbox) and keeps
// every other byte as it is.
func (w *worker) mask(in []byte) ([]byte, error) {
	spans, err := w.loc.Locate(in)
	if err != nil {
		return nil, fmt.Errorf("mask: input: %w", err)
	}
	out := make([]byte, 0, len(in)+len(spans)*(len(w.quoted)+PseudonymLen))
	done := 0
	for _, s := range spans {
		switch {
		case s.Start < done: // inside a value already replaced
			continue
		case w.redact && s.Kind >= jsonx.KindFalse && s.Kind <= jsonx.KindString:
			out = append(out, in[done:s.Start]...)
			out = append(out, `"`+Redacted+`"`...)
		case !w.redact && s.Kind == jsonx.KindString:
			out = append(out, in[done:s.Start]...)
			out = w.pseudonym(out, w.unquoted(in, s))
		case !w.redact && s.Kind == jsonx.KindNumber:
			out = append(out, in[done:s.Start]...)
			out = w.pseudonym(out, in[s.Start:s.End])
		default: // null, objects, arrays; booleans in hmac mode
			continue
		}
		done = s.End
	}
	return append(out, in[done:]...), nil
}

// unquoted returns a string span's contents, its escapes decoded.
func (w *worker) unquoted(in []byte, s jsonx.Span) []byte {
	raw := in[s.Start+1 : s.End-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return raw
	}
	v, _ := s.Unquote(in)
	w.value = append(w.value[:0], v...)
	return w.value
}

// pseudonym appends the JSON string of b's pseudonym.
func (w *worker) pseudonym(dst, b []byte) []byte {
	w.mac.Sum(b, &w.sum)
	base64.RawURLEncoding.Encode(w.enc[:], w.sum[:])
	dst = append(dst, w.quoted...)
	dst = append(dst, w.enc[:PseudonymLen]...)
	return append(dst, '"')
}

// Pseudonym returns the pseudonym of s under key and keyID, as Mask writes it.
func Pseudonym(key []byte, keyID, s string) string {
	var sum [32]byte
	guest.NewHMAC(key).Sum([]byte(s), &sum)
	return "hmac:" + keyID + ":" + base64.RawURLEncoding.EncodeToString(sum[:])[:PseudonymLen]
}
