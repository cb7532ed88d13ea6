package spec

import (
	"strings"
	"testing"
)

// fileDocs is a valid file source, its codec plugin and a flow calling it;
// the tests break one line at a time.
const fileDocs = `kind: Plugin
name: csv
module: csv.wasm
digest: sha256:0000000000000000000000000000000000000000000000000000000000000000
limits: {maxInput: 1MiB}
---
kind: Source
name: employerFiles
protocol: sftp
sftp:
  host: files.example.be
  user: fsb
  password: {env: SFTP_PASSWORD}
  hostKeys: ["SHA256:uP3bdv6xk0pS2aW1fWz1ZqN2dYQ8k6Yf3o8mJmN7wVs"]
  baseDir: /outgoing
maxFileSize: 1MiB
timeout: 20s
cache: {ttl: 5m, maxBytes: 8MiB}
operations:
  employers:
    kind: lookup
    dir: in
    pattern: "employers-*.csv"
    codec: {plugin: csv, config: {delimiter: ";"}}
    keys: [enterpriseNumber]
  files: {kind: list, dir: in, pattern: "*.csv"}
  latest: {kind: fetch, dir: in, pattern: "employers-*.csv"}
---
kind: Flow
name: employer
version: 1.0.0
method: POST
path: /employer/v1/get
steps:
  - id: employer
    call: employerFiles.employers
    acceptStatus: [404]
    with:
      query: {enterpriseNumber: input.body.enterpriseNumber}
output: steps.employer.body
---
kind: Test
name: found
flow: employer
request: {body: {enterpriseNumber: "0912345673"}}
mocks:
  - call: employerFiles.employers
    match: {query: {enterpriseNumber: "0912345673"}}
    body: {records: []}
expect: {status: 200}
`

func TestFileSourceValid(t *testing.T) {
	set, err := Load(map[string][]byte{"f.yaml": []byte(fileDocs)})
	if err != nil {
		t.Fatal(err)
	}
	src := set.Sources["employerFiles"]
	if !src.IsFile() || src.SFTP.HostKeys[0] == "" || src.Cache.TTL.D().Minutes() != 5 || src.Operations["employers"].Codec.Plugin != "csv" {
		t.Errorf("decoded %+v", src)
	}
	if got := src.FileMaxSize(src.Operations["employers"]); got != 1<<20 {
		t.Errorf("FileMaxSize %d", got)
	}
	ftp := strings.NewReplacer(
		"protocol: sftp", "protocol: ftp",
		"sftp:", "ftp:",
		`  hostKeys: ["SHA256:uP3bdv6xk0pS2aW1fWz1ZqN2dYQ8k6Yf3o8mJmN7wVs"]`, "  tls: explicit\n  serverName: files.example.be",
		"cache: {ttl: 5m, maxBytes: 8MiB}", "cache: {ttl: -1}",
	).Replace(fileDocs)
	set, err = Load(map[string][]byte{"f.yaml": []byte(ftp)})
	if err != nil {
		t.Fatal(err)
	}
	if s := set.Sources["employerFiles"]; s.FTP.TLS != "explicit" || s.Cache.TTL.D() >= 0 {
		t.Errorf("ftp decoded %+v %+v", s.FTP, s.Cache)
	}
}

// TestFileSourceErrors: each mistake is reported at its line and column,
// with a hint where one helps.
func TestFileSourceErrors(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"unknown operation", "call: employerFiles.employers", "call: employerFiles.employer",
			`f.yaml:36:11: call "employerFiles.employer": file source "employerFiles" has no operation "employer"; did you mean "employers"?`},
		{"unknown kind", "kind: lookup", "kind: lokup",
			`f.yaml:21:11: operation "employers": kind "lokup" is unknown; use list, fetch or lookup; did you mean "lookup"?`},
		{"codec not a plugin", "codec: {plugin: csv,", "codec: {plugin: cvs,",
			`f.yaml:24:21: no plugin named "cvs" for the codec of operation "employers"; did you mean "csv"?`},
		{"no host key", `  hostKeys: ["SHA256:uP3bdv6xk0pS2aW1fWz1ZqN2dYQ8k6Yf3o8mJmN7wVs"]` + "\n", "",
			`f.yaml:11:3: sftp needs hostKeys: pin the server's host key by its SHA-256 fingerprint`},
		{"bad host key", `"SHA256:uP3bdv6xk0pS2aW1fWz1ZqN2dYQ8k6Yf3o8mJmN7wVs"`, `"MD5:16:27:ac:a5"`,
			`f.yaml:14:13: host key "MD5:16:27:ac:a5" is not a SHA-256 fingerprint`},
		{"maxInput below maxFileSize", "maxFileSize: 1MiB", "maxFileSize: 4MiB",
			`f.yaml:16:14: operation "employers": codec plugin "csv" reads at most 1MiB (limits.maxInput) but the source's maxFileSize is 4MiB`},
		{"default maxInput", "limits: {maxInput: 1MiB}", "limits: {timeout: 1s}",
			`codec plugin "csv" reads at most 256KiB (limits.maxInput) but the source's maxFileSize is 1MiB`},
		{"no credentials", "  password: {env: SFTP_PASSWORD}\n", "",
			`f.yaml:11:3: sftp needs a password or a privateKey`},
		{"inline password", "password: {env: SFTP_PASSWORD}", "password: hunter2",
			`f.yaml:13:13: expected a mapping, found a string`},
		{"host is a URL", "host: files.example.be", "host: sftp://files.example.be",
			`f.yaml:11:9: host "sftp://files.example.be" must be a host name or an address`},
		{"lookup without keys", "    keys: [enterpriseNumber]\n", "",
			`operation "employers": a lookup needs keys`},
		{"missing key in call", "query: {enterpriseNumber: input.body.enterpriseNumber}", "query: {enterprise: input.body.enterpriseNumber}",
			`call "employerFiles.employers": operation "employers" has no query parameter "enterprise"; it takes enterpriseNumber, file`},
		{"body to a file operation", "query: {enterpriseNumber: input.body.enterpriseNumber}", "body: {enterpriseNumber: input.body.enterpriseNumber}",
			`a file operation takes query parameters only, not a body`},
		{"dir outside", "dir: in\n    pattern: \"employers", "dir: ../etc\n    pattern: \"employers",
			`operation "employers": dir "../etc" must be relative`},
		{"list with a codec", `files: {kind: list, dir: in, pattern: "*.csv"}`, `files: {kind: list, dir: in, codec: {plugin: csv}}`,
			`operation "files": a list takes dir and pattern only, not codec`},
		{"rest source with operations", "protocol: sftp", "protocol: rest",
			`"operations" belongs to file sources (protocol ftp or sftp), not to a rest source: write it under rest:`},
		{"protocol typo", "protocol: sftp", "protocol: stfp",
			`protocol "stfp" is not supported; use rest, soap, ftp or sftp; did you mean "sftp"?`},
		{"ttl", "ttl: 5m", "ttl: soon", `invalid ttl "soon"`},
		{"mock of an unknown operation", "  - call: employerFiles.employers\n    match", "  - call: employerFiles.employer\n    match",
			`mock "employerFiles.employer": file source "employerFiles" has no operation "employer"; did you mean "employers"?`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(fileDocs, tc.old) {
				t.Fatalf("%q is not in the document", tc.old)
			}
			doc := strings.Replace(fileDocs, tc.old, tc.new, 1)
			_, err := Load(map[string][]byte{"f.yaml": []byte(doc)})
			if got := allErrors(err); !strings.Contains(got, tc.want) {
				t.Errorf("want an error containing\n  %s\ngot\n  %s", tc.want, got)
			}
		})
	}
}

func TestFTPErrors(t *testing.T) {
	doc := strings.NewReplacer(
		"protocol: sftp", "protocol: ftp",
		"sftp:", "ftp:",
		`  hostKeys: ["SHA256:uP3bdv6xk0pS2aW1fWz1ZqN2dYQ8k6Yf3o8mJmN7wVs"]`, "  tls: implicit\n  caFile: ca.pem\n  maxConns: 100",
	).Replace(fileDocs)
	_, err := Load(map[string][]byte{"f.yaml": []byte(doc)})
	for _, want := range []string{
		`f.yaml:14:8: tls "implicit" (FTPS on port 990) is not supported`,
		`f.yaml:16:13: maxConns must be between 1 and 64`,
	} {
		if got := allErrors(err); !strings.Contains(got, want) {
			t.Errorf("want %s in\n%s", want, got)
		}
	}
	doc = strings.Replace(doc, "  tls: implicit\n", "", 1)
	if _, err := Load(map[string][]byte{"f.yaml": []byte(doc)}); !strings.Contains(allErrors(err), "caFile applies to FTPS only: add tls: explicit") {
		t.Errorf("caFile without tls: %v", err)
	}
}

// allErrors is every error of a load, one a line.
func allErrors(err error) string {
	l, ok := err.(ErrorList)
	if !ok {
		if err == nil {
			return "no error"
		}
		return err.Error()
	}
	var b strings.Builder
	for _, e := range l {
		b.WriteString(e.Error() + "\n")
	}
	return b.String()
}
