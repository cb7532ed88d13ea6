package soap_test

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/openfsb/fsb/plugins/soap"
	"github.com/openfsb/fsb/sdk/jsonx"
)

// FuzzDecode: whatever the response, decode does not panic, and what it
// returns is valid JSON: a body or a fault.
func FuzzDecode(f *testing.F) {
	configs := []string{testCfg}
	for _, c := range messageCases(f) {
		if c.op == "decode" {
			f.Add([]byte(c.in), uint8(len(configs)))
			configs = append(configs, c.cfg)
		}
	}
	for _, c := range append(okCases(), errCases()...) {
		if c.op == "decode" && c.cfg == testCfg {
			f.Add([]byte(c.in), uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, which uint8) {
		cfg := []byte(configs[int(which)%len(configs)])
		out, err := soap.Native{}.Decode(t.Context(), in, cfg)
		if err != nil {
			if out != nil {
				t.Errorf("output with an error: %s", out)
			}
			return
		}
		if !jsonx.Valid(out) {
			t.Fatalf("invalid JSON %q", out)
		}
		if !bytes.HasPrefix(out, []byte(`{"body":`)) && !bytes.HasPrefix(out, []byte(`{"fault":`)) {
			t.Fatalf("neither body nor fault: %s", out)
		}
	})
}

// FuzzEncode: whatever the JSON, encode does not panic, and an envelope it
// returns is well-formed XML.
func FuzzEncode(f *testing.F) {
	configs := []string{testCfg}
	for _, c := range messageCases(f) {
		if c.op == "encode" {
			f.Add([]byte(c.in), uint8(len(configs)))
			configs = append(configs, c.cfg)
		}
	}
	for _, c := range append(okCases(), errCases()...) {
		if c.op == "encode" && c.cfg == testCfg {
			f.Add([]byte(c.in), uint8(0))
		}
	}
	f.Fuzz(func(t *testing.T, in []byte, which uint8) {
		cfg := []byte(configs[int(which)%len(configs)])
		out, err := soap.Native{}.Encode(t.Context(), in, cfg)
		if err != nil {
			return
		}
		d := xml.NewDecoder(bytes.NewReader(out))
		for {
			_, err := d.Token()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%v in %s", err, out)
			}
		}
		if !strings.HasSuffix(string(out), "</soap:Body></soap:Envelope>\n") {
			t.Fatalf("envelope %s", out)
		}
	})
}
