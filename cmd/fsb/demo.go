package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/openfsb/fsb/cmd/fsb/internal/mocksrc"
	"github.com/openfsb/fsb/engine/sources"
)

func cmdDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var f serveFlags
	f.register(fs)
	flowsDir := fs.String("flows", "flows", "the demo flow directory")
	dataDir := fs.String("data", "testdata/demo", "the demo sources' synthetic data")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: fsb demo [flags]\n\nStarts three mock authentic sources and serves the demo flows against them.\nRun it from the repository root (or point -flows and -data there).")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log, err := f.logger(stderr)
	if err != nil {
		fmt.Fprintln(stderr, "fsb demo:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runDemo(ctx, f, *flowsDir, *dataDir, stdout, stderr, log)
}

func runDemo(ctx context.Context, f serveFlags, flowsDir, dataDir string, stdout, stderr io.Writer, log *slog.Logger) int {
	mocks, err := mocksrc.Start(dataDir, log)
	if err != nil {
		fmt.Fprintf(stderr, "fsb demo: %v\n(run it from the repository root, or pass -data)\n", err)
		return 1
	}
	defer mocks.Close()
	set, plans := load(flowsDir, stderr)
	if plans == nil {
		return 1
	}
	urls := map[string]string{}
	for _, n := range mocks.Names() {
		urls[n] = mocks.URL(n)
	}
	srv, err := start(set, plans, sources.Options{BaseURLs: urls, LookupEnv: demoEnv}, f, log)
	if err != nil {
		fmt.Fprintln(stderr, "fsb demo:", err)
		return 1
	}
	printDemo(stdout, srv.addr, urls)
	return srv.wait(ctx, log)
}

func printDemo(w io.Writer, addr string, urls map[string]string) {
	base := "http://" + addr
	fmt.Fprintf(w, `OpenFSB demo: serving the flows in flows/ on %s
mock sources: enterpriseRegister %s, personRegister %s, vatRegister %s

Try:
  # one enterprise from three sources (register, VAT, directors from the national register)
  curl -s -X POST %s/enterpriseProfile/v1/get -H 'Content-Type: application/json' -d '{"enterpriseNumber":"%s"}'

  # the VAT register is too slow for this one: the optional step degrades (vat.available false)
  curl -s -X POST %s/enterpriseProfile/v1/get -H 'Content-Type: application/json' -d '{"enterpriseNumber":"%s"}'

  # an unknown field is refused with a Belgif badRequest (unknownInput)
  curl -s -X POST %s/enterpriseProfile/v1/get -H 'Content-Type: application/json' -d '{"enterpriseNumber":"%s","nickname":"x"}'

  # a research extract: minimised and pseudonymised by two sandboxed WASM plugins (project, mask)
  curl -s -X POST %s/personResearch/v1/get -H 'Content-Type: application/json' -d '{"ssin":"%s"}'

  # health of the sources behind the gateway
  curl -s %s/health

Ctrl-C stops the demo.
`, base, urls["enterpriseRegister"], urls["personRegister"], urls["vatRegister"],
		base, mocksrc.ExampleEnterprise,
		base, mocksrc.SlowVATEnterprise,
		base, mocksrc.ExampleEnterprise,
		base, mocksrc.ExampleSSIN,
		base)
}

// DemoMaskKey is the mask plugin's HMAC key in the demo when
// FSB_DEMO_MASK_KEY is not set (flows/plugins.yaml). It is public: demo
// pseudonyms protect nothing.
const DemoMaskKey = "demo-only-not-a-secret"

// demoEnv is the environment with the demo's defaults for what is unset.
func demoEnv(name string) (string, bool) {
	if v, ok := os.LookupEnv(name); ok || name != "FSB_DEMO_MASK_KEY" {
		return v, ok
	}
	return DemoMaskKey, true
}
