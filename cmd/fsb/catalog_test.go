package main

// End-to-end tests of the service catalogue (engine/catalog) as fsb serve
// mounts it: the demo's mock sources on loopback, the flows served by the
// real gateway, the catalogue read over HTTP, and a real headless Chromium
// (Debian's chromium: skipped without it, a failure under CI=true).

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/openfsb/fsb/cmd/fsb/internal/mocksrc"
	"github.com/openfsb/fsb/engine/sources"
)

// serveWithMocks starts the demo's mock sources and serves the flows of
// dir against them as fsb serve does (no TLS, no access control); it
// returns the gateway's base URL.
func serveWithMocks(t *testing.T, dir string) string {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	mocks, err := mocksrc.Start(filepath.Join(root, "testdata/demo"), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mocks.Close() })
	urls := map[string]string{}
	for _, n := range mocks.Names() {
		urls[n] = mocks.URL(n)
	}
	srv := serveFlows(t, dir, serveFlags{addr: "127.0.0.1:0", logLevel: "warn"}, serveOptions{
		sources: sources.Options{BaseURLs: urls, LookupEnv: demoEnv}, log: log})
	return "http://" + srv.addr
}

type catalogPage struct {
	Total int `json:"total"`
	Items []struct {
		Code   string `json:"code"`
		Name   string `json:"name"`
		Method string `json:"method"`
		Links  struct {
			Page, OpenAPI string
		} `json:"links"`
	} `json:"items"`
}

func getCatalog(t *testing.T, base string) catalogPage {
	t.Helper()
	var p catalogPage
	body := httpGet(t, base+"/catalog/api/v1/services?pageSize=100", 200)
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func httpGet(t *testing.T, u string, want int) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", u, resp.StatusCode, want, b)
	}
	return b
}

// TestCatalogOpenAPIRequests reads each demo service's OpenAPI document
// from the gateway, builds a request from it alone (its server, path,
// parameter and body examples, required headers), sends it to the demo
// flows, and checks the answer against the document's response schema.
// (engine/catalog validates the documents themselves with kin-openapi.)
func TestCatalogOpenAPIRequests(t *testing.T) {
	base := serveWithMocks(t, filepath.Join(root, "flows"))
	cat := getCatalog(t, base)
	demo := map[string]bool{"enterpriseProfile": false, "enterprise": false, "person": false, "personResearch": false}
	for _, it := range cat.Items {
		if _, ok := demo[it.Name]; !ok {
			continue // another demo flow, tested where it is made
		}
		demo[it.Name] = true
		t.Run(it.Name, func(t *testing.T) {
			raw := httpGet(t, base+it.Links.OpenAPI, 200)
			if y := httpGet(t, base+strings.TrimSuffix(it.Links.OpenAPI, ".json")+".yaml", 200); !bytes.HasPrefix(y, []byte(`openapi: "3.1.0"`)) {
				t.Errorf("openapi.yaml: %.100s", y)
			}
			callFromOpenAPI(t, base, raw)
		})
	}
	for name, seen := range demo {
		if !seen {
			t.Errorf("demo flow %s is not in the catalogue", name)
		}
	}
}

// openAPIDoc is the part of an OpenAPI document a client needs to call.
type openAPIDoc struct {
	OpenAPI string                                 `json:"openapi"`
	Servers []struct{ URL string }                 `json:"servers"`
	Paths   map[string]map[string]openAPIOperation `json:"paths"`
}

type openAPIOperation struct {
	Parameters []struct {
		Name     string `json:"name"`
		In       string `json:"in"`
		Required bool   `json:"required"`
		Example  any    `json:"example"`
		Schema   struct {
			Enum []any `json:"enum"`
		} `json:"schema"`
	} `json:"parameters"`
	RequestBody *struct {
		Content map[string]struct {
			Example any `json:"example"`
		} `json:"content"`
	} `json:"requestBody"`
	Responses map[string]struct {
		Content map[string]struct {
			Schema map[string]any `json:"schema"`
		} `json:"content"`
	} `json:"responses"`
}

func callFromOpenAPI(t *testing.T, base string, raw []byte) {
	t.Helper()
	var doc openAPIDoc
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Servers) == 0 || len(doc.Paths) == 0 {
		t.Fatalf("document: %.300s", raw)
	}
	for relPath, item := range doc.Paths {
		for method, op := range item {
			method = strings.ToUpper(method)
			path := relPath
			query := url.Values{}
			header := http.Header{}
			for _, p := range op.Parameters {
				if !p.Required && p.Example == nil {
					continue
				}
				v := ""
				switch {
				case p.Example != nil:
					v = strings.Trim(mustJSON(t, p.Example), `"`)
				case len(p.Schema.Enum) > 0:
					v = p.Schema.Enum[0].(string)
				case p.In == "header":
					v = "catalog-test"
				default:
					t.Fatalf("%s %s: no value for the required %s parameter %s", method, relPath, p.In, p.Name)
				}
				switch p.In {
				case "path":
					path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(v))
				case "query":
					query.Set(p.Name, v)
				case "header":
					header.Set(p.Name, v)
				}
			}
			var body []byte
			if rb := op.RequestBody; rb != nil {
				mt, ok := rb.Content["application/json"]
				if !ok || mt.Example == nil {
					t.Fatalf("%s %s: a request body without an example", method, relPath)
				}
				body = []byte(mustJSON(t, mt.Example))
				header.Set("Content-Type", "application/json")
			}
			u := base + doc.Servers[0].URL + path
			if len(query) > 0 {
				u += "?" + query.Encode()
			}
			req, err := http.NewRequest(method, u, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header = header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			documented, ok := op.Responses[strconv.Itoa(resp.StatusCode)]
			if resp.StatusCode < 200 || resp.StatusCode > 299 || !ok {
				t.Fatalf("%s %s: %d %s", method, u, resp.StatusCode, got)
			}
			mt, ok := documented.Content[resp.Header.Get("Content-Type")]
			if !ok {
				t.Fatalf("%s %s: answered %s, which the document does not list", method, u, resp.Header.Get("Content-Type"))
			}
			c := jsonschema.NewCompiler()
			if err := c.AddResource("mem://response.json", mt.Schema); err != nil {
				t.Fatal(err)
			}
			sch, err := c.Compile("mem://response.json")
			if err != nil {
				t.Fatalf("the response schema: %v", err)
			}
			v, err := jsonschema.UnmarshalJSON(bytes.NewReader(got))
			if err != nil {
				t.Fatal(err)
			}
			if err := sch.Validate(v); err != nil {
				t.Errorf("%s %s: the answer does not match the document: %v\n%s", method, u, err, got)
			}
		}
	}
}

// TestCatalogNewFlowServed: a flow written into the served directory is in
// the catalogue, with its page and OpenAPI document, and answers — no code
// knows about it.
func TestCatalogNewFlowServed(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "sources.yaml"), `kind: Source
name: enterpriseRegister
title: Enterprise register (test)
protocol: rest
rest:
  baseUrl: http://127.0.0.1:9   # replaced by the mock's address
  operations:
    getEnterprise: {method: GET, path: "/enterprises/{enterpriseNumber}"}
`, 0o644)
	writeFile(t, filepath.Join(dir, "enterprise-name.yaml"), `kind: Flow
name: enterpriseName
version: 1.0.0
method: GET
path: /enterpriseName/v1/enterprises/{enterpriseNumber}
catalog:
  code: ENT-NAME
  title: Enterprise name
  description: Only the name of an enterprise.
  owner: Test team
  status: active
  protocols: [rest]
  contacts: [{name: Desk, email: desk@example.org}]
legal:
  dataCategories: [enterpriseIdentity]
  sensitivity: public
  legalBases: [law]
  purposes: [{code: supplierCheck, description: Checking a supplier}]
input:
  path:
    properties:
      enterpriseNumber: {type: string, pattern: "^[01][0-9]{9}$"}
steps:
  - id: e
    call: enterpriseRegister.getEnterprise
    with: {path: {enterpriseNumber: input.path.enterpriseNumber}}
output:
  name: steps.e.body.name
---
kind: Test
name: the name only
flow: enterpriseName
request: {path: /enterpriseName/v1/enterprises/0912345673}
mocks: [{call: enterpriseRegister.getEnterprise, body: {name: Zonnebloem Bakkerijen NV}}]
expect: {status: 200, body: {name: Zonnebloem Bakkerijen NV}}
`, 0o644)
	base := serveWithMocks(t, dir)
	cat := getCatalog(t, base)
	if cat.Total != 1 || cat.Items[0].Code != "ENT-NAME" {
		t.Fatalf("catalogue: %+v", cat)
	}
	page := httpGet(t, base+cat.Items[0].Links.Page, 200)
	for _, want := range []string{"Enterprise name", "Enterprise register (test)", "supplierCheck", "<svg"} {
		if !bytes.Contains(page, []byte(want)) {
			t.Errorf("page lacks %s", want)
		}
	}
	callFromOpenAPI(t, base, httpGet(t, base+"/enterpriseName/v1/doc/openapi.json", 200))
}

// chromiumPath finds Debian's chromium (apt-get install chromium) or
// another Chrome; the browser test skips without one, except under CI.
func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is required under CI=true (apt-get install chromium)")
	}
	t.Skip("chromium not installed (apt-get install chromium)")
	return ""
}

// TestCatalogBrowser drives the catalogue pages in real headless Chromium
// as a person would, without any script of the pages' own: open the
// index, search, open a service, see its diagram and legal requirements,
// download its OpenAPI document, reach the content by keyboard, and read
// the pages on a phone-sized screen. Screenshots go to $FSB_SCREENSHOT_DIR,
// or to the test's temporary directory.
func TestCatalogBrowser(t *testing.T) {
	chrome := chromiumPath(t)
	base := serveWithMocks(t, filepath.Join(root, "flows"))
	shots := os.Getenv("FSB_SCREENSHOT_DIR")
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	downloads := t.TempDir()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chrome), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	if err := chromedp.Do(bctx); err != nil { // start the browser without a deadline (chromedp.Run)
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute) // a hang guard, not a timing test: a busy 2-core CI machine took >45 s once
	defer cancel()

	do := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	// follow runs actions that navigate (a click on a link or a submit
	// button) and waits for the new page: a wait for an element could
	// otherwise be met by the old page (the index lists every service),
	// and a screenshot taken mid-navigation never completes.
	follow := func(step string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		resp, err := chromedp.RunResponse(ctx, actions...)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if resp.Status != 200 {
			t.Fatalf("%s: status %d", step, resp.Status)
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// The index, then a search submitted by the form itself.
	do("open the index", chromedp.Navigate(base+"/catalog"), chromedp.WaitVisible(chromedp.CSS("#q")))
	shot("1-index.png")
	if lang := eval(`document.documentElement.lang`); lang != "en" {
		t.Errorf("lang=%v", lang)
	}
	do("fill in the search",
		chromedp.SendKeys(chromedp.CSS("#q"), "pseudonym"),
		chromedp.SetValue(chromedp.CSS("#status"), "active"))
	follow("search", chromedp.Click(chromedp.CSS(`form.filters button[type="submit"]`)))
	do("search results", chromedp.WaitVisible(chromedp.CSS(`a[href="/catalog/services/PERSON-RESEARCH/v1"]`)))
	shot("2-search.png")
	if count := text(".count"); count != "1 service match" {
		t.Errorf("after the search: %q", count)
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "q=pseudonym") || !strings.Contains(loc, "status=active") {
		t.Errorf("the search is not in the URL: %s", loc)
	}

	// The service page: the diagram and the legal requirements.
	follow("open the service", chromedp.Click(chromedp.CSS(`a[href="/catalog/services/PERSON-RESEARCH/v1"]`)))
	do("the service page", chromedp.WaitVisible(chromedp.CSS("#diagram svg")))
	shot("3-service.png")
	legal := text("#legal")
	for _, want := range []string{"Legal requirements", "an earlier authorisation", "confidential", "statisticalResearch", "personIdentity"} {
		if !strings.Contains(legal, want) {
			t.Errorf("legal requirements lack %q: %s", want, legal)
		}
	}
	if title := eval(`document.getElementById("fd-title").textContent`); title != "Flow diagram: POST /personResearch/v1/get" {
		t.Errorf("diagram title %v", title)
	}
	if boxes := eval(`document.querySelectorAll("#diagram svg g rect").length`); boxes.(float64) < 6 {
		t.Errorf("the diagram has %v boxes", boxes)
	}
	if w := eval(`document.querySelector("#diagram svg").getBoundingClientRect().width`); w.(float64) < 200 {
		t.Errorf("the diagram is %vpx wide", w)
	}

	// Download the OpenAPI document by its link.
	if _, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: downloads, EventsEnabled: new(true)}); err != nil {
		t.Fatal(err)
	}
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	do("download the OpenAPI document", chromedp.Click(chromedp.CSS("#openapi-json")))
	guid := ""
	for ev, err := range progress {
		if err != nil {
			t.Fatalf("the OpenAPI download did not complete: %v", err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			guid = ev.GUID
			break
		}
	}
	raw, err := os.ReadFile(filepath.Join(downloads, guid))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string
		Info    struct{ Title string }
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.OpenAPI != "3.1.0" || doc.Info.Title != "Person (research extract)" {
		t.Errorf("downloaded document: %v, %+v", err, doc)
	}

	// Keyboard: the first Tab reaches the skip link.
	do("keyboard",
		chromedp.Navigate(base+"/catalog/services/ENT-PROFILE/v1"),
		chromedp.WaitVisible(chromedp.CSS("#diagram svg")),
		chromedp.KeyEvent(kb.Tab))
	if active := eval(`document.activeElement.textContent`); active != "Skip to content" {
		t.Errorf("the first Tab focuses %q", active)
	}

	// A phone: nothing but the diagram (which scrolls in its frame) is
	// wider than the screen.
	do("phone",
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(base+"/catalog/services/ENT-PROFILE/v1"),
		chromedp.WaitVisible(chromedp.CSS("#legal")))
	shot("4-service-phone.png")
	if overflow := eval(`document.documentElement.scrollWidth > window.innerWidth`); overflow != false {
		t.Error("the service page scrolls sideways on a phone")
	}
	do("phone index", chromedp.Navigate(base+"/catalog"), chromedp.WaitVisible(chromedp.CSS("#q")))
	shot("5-index-phone.png")
	t.Logf("screenshots in %s", shots)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
