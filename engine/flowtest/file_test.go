package flowtest_test

import (
	"strings"
	"testing"

	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/flowtest"
	"github.com/openfsb/fsb/engine/spec"
)

// fileTests are flow tests of a file source, as an integration engineer
// writes them: a mock answers the operation's JSON, 404 when nothing
// matches; the request is checked as the connector checks it.
const fileTests = `
kind: Plugin
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
maxFileSize: 1MiB
timeout: 200ms
operations:
  employers:
    kind: lookup
    pattern: "employers-*.csv"
    codec: {plugin: csv}
    keys: [enterpriseNumber]
---
kind: Flow
name: employer
version: 1.0.0
method: POST
path: /employer/v1/get
input:
  body: {type: object, additionalProperties: true}
steps:
  - id: employer
    call: employerFiles.employers
    acceptStatus: [404]
    with:
      query: {enterpriseNumber: input.body.enterpriseNumber, file: input.body.file}
output:
  found: steps.employer.status == 200
  employees: 'steps.employer.status == 200 ? steps.employer.body.records[0].employees : nil'
---
kind: Test
name: found
flow: employer
request: {body: {enterpriseNumber: "0912345673"}}
mocks:
  - call: employerFiles.employers
    match: {query: {enterpriseNumber: "0912345673"}}
    body: {file: {name: employers-2024Q4.csv, size: 120}, records: [{enterpriseNumber: "0912345673", employees: 48}]}
expect: {status: 200, body: {found: true, employees: 48}, calls: {employerFiles.employers: 1}}
---
kind: Test
name: no record
flow: employer
request: {body: {enterpriseNumber: "0000000000"}}
mocks:
  - call: employerFiles.employers
    status: 404
    body: {records: []}
expect: {status: 200, body: {found: false}}
---
kind: Test
name: a missing key fails before the transport
flow: employer
request: {body: {}}
mocks:
  - call: employerFiles.employers
    body: {records: []}
expect: {problem: {type: badGateway, step: employer}}
---
kind: Test
name: a file outside the pattern fails before the transport
flow: employer
request: {body: {enterpriseNumber: "0912345673", file: "passwd"}}
mocks:
  - call: employerFiles.employers
    body: {records: []}
expect: {problem: {type: badGateway, step: employer}}
---
kind: Test
name: a timeout mock waits for the source's timeout
flow: employer
request: {body: {enterpriseNumber: "0912345673"}}
mocks:
  - call: employerFiles.employers
    error: timeout
expect: {problem: {type: gatewayTimeout, step: employer}, calls: {employerFiles.employers: 1}}
`

func TestFileMocks(t *testing.T) {
	set, err := spec.Load(map[string][]byte{"file_test.yaml": []byte(fileTests)})
	if err != nil {
		t.Fatal(err)
	}
	plans, err := flow.Compile(set)
	if err != nil {
		t.Fatal(err)
	}
	results := flowtest.Run(set, plans, nil, nil)
	if len(results) != 5 {
		t.Fatalf("%d results, want 5", len(results))
	}
	for _, r := range results {
		if !r.Pass {
			t.Errorf("%s: %s", r.Name(), strings.Join(r.Failures, "\n"))
		}
	}
}
