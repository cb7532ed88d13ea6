package audit

import (
	"encoding/base64"
	"strconv"
	"unicode/utf8"
)

// appendPayload appends the payload of r in the current version: byte for
// byte what json.Marshal writes for payloadV2 (field order, omitempty, string
// escaping with HTML-safe escapes, base64 bytes), without reflection.
// TestEncodeMatchesJSON and FuzzEncodeMatchesJSON hold it to that.
func appendPayload(dst []byte, r *Record) []byte {
	dst = append(dst, `{"kind":`...)
	dst = appendJSONString(dst, string(r.Kind))
	dst = append(dst, `,"call":`...)
	dst = appendJSONString(dst, r.Call)
	if r.Request != 0 {
		dst = append(dst, `,"request":`...)
		dst = strconv.AppendUint(dst, r.Request, 10)
	}
	dst = appendStringField(dst, `,"org":`, r.Organisation)
	dst = appendStringField(dst, `,"app":`, r.Application)
	dst = appendStringField(dst, `,"cred":`, r.Credential)
	dst = appendStringField(dst, `,"clientIp":`, r.ClientIP)
	dst = appendStringField(dst, `,"endUser":`, r.EndUser)
	dst = appendStringField(dst, `,"purpose":`, r.Purpose)
	dst = appendStringField(dst, `,"grant":`, r.Grant)
	dst = appendStringField(dst, `,"legalBasis":`, r.LegalBasis)
	dst = appendStringField(dst, `,"service":`, r.Service)
	dst = appendStringField(dst, `,"serviceVersion":`, r.ServiceVersion)
	dst = appendStringField(dst, `,"env":`, r.Environment)
	dst = appendStringField(dst, `,"subject":`, r.Subject)
	dst = appendStringField(dst, `,"subjectClear":`, r.SubjectClear)
	dst = appendStringField(dst, `,"traceIn":`, r.TraceIn)
	dst = appendStringField(dst, `,"traceOut":`, r.TraceOut)
	if d := r.Decision; d != nil {
		dst = append(dst, `,"decision":{"allowed":`...)
		dst = strconv.AppendBool(dst, d.Allowed)
		dst = appendStringField(dst, `,"reason":`, d.Reason)
		dst = append(dst, '}')
	}
	dst = appendIntField(dst, `,"status":`, int64(r.Status))
	dst = appendStringField(dst, `,"problem":`, r.Problem)
	dst = appendStringField(dst, `,"digest":`, r.Digest)
	if len(r.Released) > 0 {
		dst = append(dst, `,"released":[`...)
		for i, f := range r.Released {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, f)
		}
		dst = append(dst, ']')
	}
	if len(r.Sources) > 0 {
		dst = append(dst, `,"sources":[`...)
		for i := range r.Sources {
			s := &r.Sources[i]
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = append(dst, `{"source":`...)
			dst = appendJSONString(dst, s.Source)
			dst = appendStringField(dst, `,"operation":`, s.Operation)
			dst = appendStringField(dst, `,"traceId":`, s.TraceID)
			dst = appendStringField(dst, `,"sourceTrace":`, s.SourceTrace)
			dst = appendIntField(dst, `,"status":`, int64(s.Status))
			dst = append(dst, `,"latencyUs":`...)
			dst = strconv.AppendInt(dst, s.Latency.Microseconds(), 10)
			dst = appendIntField(dst, `,"bytes":`, s.Bytes)
			dst = appendIntField(dst, `,"attempts":`, int64(s.Attempts))
			dst = appendStringField(dst, `,"digest":`, s.Digest)
			dst = appendStringField(dst, `,"error":`, s.Error)
			dst = appendStringField(dst, `,"subject":`, s.Subject)
			dst = appendStringField(dst, `,"subjectClear":`, s.SubjectClear)
			dst = append(dst, '}')
		}
		dst = append(dst, ']')
	}
	dst = appendSealed(dst, `,"requestBody":`, r.RequestBody)
	dst = appendSealed(dst, `,"responseBody":`, r.ResponseBody)
	return append(dst, '}')
}

func appendStringField(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	return appendJSONString(append(dst, name...), v)
}

func appendIntField(dst []byte, name string, v int64) []byte {
	if v == 0 {
		return dst
	}
	return strconv.AppendInt(append(dst, name...), v, 10)
}

func appendSealed(dst []byte, name string, b *SealedBody) []byte {
	if b == nil {
		return dst
	}
	dst = append(dst, name...)
	dst = append(dst, `{"alg":`...)
	dst = appendJSONString(dst, b.Alg)
	dst = append(dst, `,"kid":`...)
	dst = appendJSONString(dst, b.KeyID)
	dst = append(dst, `,"nonce":`...)
	dst = appendJSONBytes(dst, b.Nonce)
	dst = append(dst, `,"data":`...)
	dst = appendJSONBytes(dst, b.Data)
	return append(dst, '}')
}

func appendJSONBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '"')
	dst = base64.StdEncoding.AppendEncode(dst, b)
	return append(dst, '"')
}

// appendJSONString is encoding/json's string encoder as json.Marshal runs
// it (HTML escaping on): <, >, &, control characters, U+2028 and U+2029
// escaped, each invalid UTF-8 byte replaced by \ufffd.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		for i+8 <= len(s) && !needsEscape8(s[i:i+8]) {
			i += 8
		}
		if i == len(s) {
			break
		}
		if b := s[i]; b < utf8.RuneSelf {
			if jsonSafe[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hex[b>>4], hex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		} else if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[c&0xF])
		} else {
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// jsonSafe marks the ASCII bytes json.Marshal copies as they are: not a
// control character, '"', '\\', or (HTML escaping) '<', '>', '&'.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for b := 0x20; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// needsEscape8 reports whether any of the 8 bytes of s may need escaping:
// non-ASCII, a control character, or one of " \\ < > & (word-at-a-time
// zero-byte tests; a false positive only sends the bytes to the exact
// byte-by-byte path).
func needsEscape8(s string) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	_ = s[7]
	x := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	q, b, l, g, a := x^('"'*lo), x^('\\'*lo), x^('<'*lo), x^('>'*lo), x^('&'*lo)
	bad := x | (x - 0x20*lo) | (q-lo)&^q | (b-lo)&^b | (l-lo)&^l | (g-lo)&^g | (a-lo)&^a
	return bad&hi != 0
}
