package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// jsonToYAML re-writes a JSON document as block-style YAML, keeping the key
// order. Every string value is double-quoted (a JSON string is a valid YAML
// double-quoted scalar), so that no YAML reader can take "0912345673" for a
// number or "no" for false; keys are quoted unless plainly safe.
func jsonToYAML(j []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var b bytes.Buffer
	if err := yamlValue(dec, &b, 0, false); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

var yamlWords = map[string]bool{"y": true, "n": true, "yes": true, "no": true, "on": true, "off": true, "true": true, "false": true, "null": true}

func yamlKey(k string) string {
	if plainKey.MatchString(k) && !yamlWords[strings.ToLower(k)] {
		return k
	}
	return quote(k)
}

func quote(s string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// yamlValue writes the next JSON value at the given indentation; inline
// is true when the value follows "key:" or "- " on the same line.
func yamlValue(dec *json.Decoder, b *bytes.Buffer, indent int, inline bool) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	pad := strings.Repeat("  ", indent)
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			if !dec.More() {
				b.WriteString(" {}\n")
				_, err := dec.Token()
				return err
			}
			if inline {
				b.WriteByte('\n')
			}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := kt.(string)
				fmt.Fprintf(b, "%s%s:", pad, yamlKey(k))
				if err := yamlValue(dec, b, indent+1, true); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		case '[':
			if !dec.More() {
				b.WriteString(" []\n")
				_, err := dec.Token()
				return err
			}
			if inline {
				b.WriteByte('\n')
			}
			for dec.More() {
				fmt.Fprintf(b, "%s-", pad)
				if err := yamlItem(dec, b, indent+1); err != nil {
					return err
				}
			}
			_, err := dec.Token()
			return err
		}
	case string:
		b.WriteString(" " + quote(t) + "\n")
	case json.Number:
		b.WriteString(" " + t.String() + "\n")
	case bool:
		fmt.Fprintf(b, " %t\n", t)
	case nil:
		b.WriteString(" null\n")
	}
	return nil
}

// yamlItem writes one list item after its "-": a mapping starts on the
// same line, anything else as a value.
func yamlItem(dec *json.Decoder, b *bytes.Buffer, indent int) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	sub := json.NewDecoder(bytes.NewReader(raw))
	sub.UseNumber()
	if len(raw) > 0 && raw[0] == '{' && string(raw) != "{}" {
		var inner bytes.Buffer
		if err := yamlValue(sub, &inner, indent, false); err != nil {
			return err
		}
		// the first key goes on the "-" line
		b.WriteString(" " + strings.TrimPrefix(inner.String(), strings.Repeat("  ", indent)))
		return nil
	}
	return yamlValue(sub, b, indent, true)
}
