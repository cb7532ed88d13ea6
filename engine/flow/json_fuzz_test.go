package flow

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzJSON: decodeJSON accepts exactly what encoding/json accepts, and
// appendJSON of the decoded value means the same as the input.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":[1,2.5,"x",null,true]}`, `"\u00e9\ud83d\ude00"`, `1e400`, `{"a":1,"a":2}`, `[`, "\"\x01\"", `"\u2028"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := decodeJSON(b)
		if len(bytes.TrimSpace(b)) == 0 {
			return
		}
		var std any
		stdErr := json.Unmarshal(b, &std)
		if err != nil {
			if stdErr == nil {
				t.Fatalf("we refuse JSON that encoding/json accepts: %v", err)
			}
			return
		}
		// We may accept what encoding/json refuses (fastjson is lenient about
		// control characters and huge numbers), but what we write back must
		// always be valid JSON.
		out, err := appendJSON(nil, v)
		if err != nil {
			return // NaN/Inf cannot be written; refusing is correct
		}
		var back any
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("appendJSON wrote invalid JSON %q: %v", out, err)
		}
		if stdErr != nil {
			return
		}
		x, _ := json.Marshal(std)
		if bytes.Contains(x, []byte("\ufffd")) {
			return // lone surrogates: encoding/json writes U+FFFD, fastjson keeps the escape text
		}
		y, _ := json.Marshal(back)
		if !bytes.Equal(x, y) {
			t.Fatalf("round trip changed the value:\n in  %s\n out %s", x, y)
		}
	})
}

// FuzzFramed: the framing check never refuses valid JSON, and refuses
// every valid document cut short.
func FuzzFramed(f *testing.F) {
	for _, s := range []string{`{"a":[1,{"b":"c\"}"}]}`, `[]`, `"x"`, `{"a":"\\"}`, `[[[]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if !json.Valid(b) {
			_ = framed(b) // must not panic
			return
		}
		if err := framed(b); err != nil {
			t.Fatalf("framed refuses valid JSON %q: %v", b, err)
		}
		trimmed := bytes.TrimSpace(b)
		if len(trimmed) > 1 && (trimmed[0] == '{' || trimmed[0] == '[') {
			if err := framed(trimmed[:len(trimmed)-1]); err == nil {
				t.Fatalf("framed accepts %q cut short", trimmed[:len(trimmed)-1])
			}
		}
	})
}
