package main

import (
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"

	"github.com/openfsb/fsb/cmd/fsb/internal/mocksrc"
	"github.com/openfsb/fsb/engine/access"
	"github.com/openfsb/fsb/engine/connector/file/sftp/sftptest"
	"github.com/openfsb/fsb/engine/sources"
)

// The demo's SOAP and file sources (issue 6): a mock of the EU's VIES
// checkVat service and an in-process SFTP server serving the synthetic
// quarterly employer file, both called by the supplierCheck flow together
// with the REST enterprise register.
//
// The SFTP server makes a fresh host key per run; its address and the
// key's pin reach the employerFiles source as an address override
// (sftp://host:port?hostKey=SHA256:…, engine/sources), so the pin written
// in flows/sources.yaml is a placeholder and nothing is trusted unpinned.

// demoSupplier is the enterprise of the printed call: Boulangerie du
// Parc, whose VAT number VIES finds valid and which owes social security
// contributions in the employer file.
const demoSupplier = "0967890150"

// demoSFTPPasswordVar holds the password of the demo's SFTP server and of
// the employerFiles source (flows/sources.yaml); DemoSFTPPassword when it
// is unset.
const demoSFTPPasswordVar = "FSB_DEMO_SFTP_PASSWORD"

// DemoSFTPPassword is public: the demo's SFTP server serves synthetic
// data on loopback only.
const DemoSFTPPassword = "demo-only-not-a-secret"

func init() {
	demoEnvDefaults[demoSFTPPasswordVar] = DemoSFTPPassword
	demoSources = append(demoSources, startFileAndSOAPMocks)
	demoGrants = append(demoGrants, demoGrant{
		service: "supplierCheck/v1", basis: access.Law, purpose: "publicProcurement",
		reference: "Law of 17 June 2016 on public procurement, art. 68 (social security debts as a ground for exclusion)",
		test:      demoRequest{"POST", "/supplierCheck/v1/get", `{"enterpriseNumber":"` + mocksrc.ExampleEnterprise + `"}`},
	})
	demoCalls = append(demoCalls, demoCall{
		comment: "a supplier check from REST, SOAP (the EU's VIES) and a record of a CSV file on an SFTP server",
		grant:   "supplierCheck/v1", demoRequest: demoRequest{"POST", "/supplierCheck/v1/get", `{"enterpriseNumber":"` + demoSupplier + `"}`},
	})
}

// startFileAndSOAPMocks starts the mock VIES and the SFTP server over
// dataDir/files, and points the vies and employerFiles sources at them.
func startFileAndSOAPMocks(dataDir string, log *slog.Logger, opt *sources.Options) (func(), error) {
	vies, err := mocksrc.StartVIES(dataDir, log)
	if err != nil {
		return nil, err
	}
	password, _ := demoEnv(demoSFTPPasswordVar)
	files, err := sftptest.Start(sftptest.Config{Dir: filepath.Join(dataDir, "files"), User: "fsb", Password: password})
	if err != nil {
		_ = vies.Close()
		return nil, fmt.Errorf("demo SFTP server: %w", err)
	}
	opt.BaseURLs["vies"] = vies.URL
	opt.BaseURLs["employerFiles"] = "sftp://" + files.Addr + "?hostKey=" + url.QueryEscape(files.HostKey)
	return func() { _ = files.Close(); _ = vies.Close() }, nil
}
