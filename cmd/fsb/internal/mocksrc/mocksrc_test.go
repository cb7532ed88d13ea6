package mocksrc

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// startDemo starts the sources on the demo data and closes them after the test.
func startDemo(t *testing.T, opts options, log *slog.Logger) *Sources {
	t.Helper()
	s, err := start(demoDir, log, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func newClient(timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &http.Client{Transport: tr, Timeout: timeout}
}

// unusedEnterpriseNumber is valid but belongs to no enterprise in the data.
const unusedEnterpriseNumber = "0999999922" // 97 - (09999999 mod 97) = 22

// unknownSSIN is valid (born 1979) but nobody in the person register has it.
const unknownSSIN = "79050641037"

const callerTraceID = "7f0c3a2e-caller-trace-0001"

type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func do(t *testing.T, c *http.Client, method, url, body string, header map[string]string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: raw}
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &r.json); err != nil {
			t.Fatalf("%s %s: body is not a JSON object: %v: %s", method, url, err, raw)
		}
	}
	return r
}

func TestEndpoints(t *testing.T) {
	s := startDemo(t, options{slowDelay: SlowVATDelay}, nil)
	c := newClient(2 * time.Second)
	big := `{"ssin":"` + strings.Repeat("1", maxPersonBody) + `"}`

	type check func(t *testing.T, r response)
	field := func(name string, want any) check {
		return func(t *testing.T, r response) {
			t.Helper()
			if got := r.json[name]; got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
	}
	absent := func(name string) check {
		return func(t *testing.T, r response) {
			t.Helper()
			if _, ok := r.json[name]; ok {
				t.Errorf("%s present, want it omitted", name)
			}
		}
	}
	items := func(wantNumbers ...string) check {
		return func(t *testing.T, r response) {
			t.Helper()
			list, ok := r.json["items"].([]any)
			if !ok {
				t.Fatalf("items = %v, want an array", r.json["items"])
			}
			var got []string
			for _, it := range list {
				m := it.(map[string]any)
				if len(m) != 3 || m["name"] == nil || m["status"] == nil {
					t.Errorf("item %v: want enterpriseNumber, name and status only", m)
				}
				got = append(got, m["enterpriseNumber"].(string))
			}
			if strings.Join(got, ",") != strings.Join(wantNumbers, ",") {
				t.Errorf("items %v, want %v", got, wantNumbers)
			}
		}
	}
	issue := func(typ, in, name string) check {
		return func(t *testing.T, r response) {
			t.Helper()
			list, _ := r.json["issues"].([]any)
			for _, it := range list {
				m := it.(map[string]any)
				if m["type"] == typ && m["in"] == in && (name == "" || m["name"] == name) {
					return
				}
			}
			t.Errorf("issues %v: want one of type %s in %s name %q", list, typ, in, name)
		}
	}
	noSSINEcho := func(t *testing.T, r response) {
		t.Helper()
		if bytes.Contains(r.body, []byte(unknownSSIN)) || bytes.Contains(r.body, []byte("6803140174")) {
			t.Errorf("problem body repeats the ssin: %s", r.body)
		}
	}

	tests := []struct {
		name        string
		source      string
		method      string
		path        string
		body        string
		wantStatus  int
		wantProblem string // problem type; "" for a plain JSON answer
		checks      []check
	}{
		// enterprise register
		{"enterprise health", EnterpriseRegister, "GET", "/health", "", 200, "", []check{field("status", "UP")}},
		{"enterprise found", EnterpriseRegister, "GET", "/enterprises/" + ExampleEnterprise, "", 200, "",
			[]check{field("name", "Zonnebloem Bakkerijen"), field("legalForm", "NV"), field("status", "active")}},
		{"enterprise found with dots", EnterpriseRegister, "GET", "/enterprises/0912.345.673", "", 200, "",
			[]check{field("enterpriseNumber", ExampleEnterprise)}},
		{"enterprise starting with 1", EnterpriseRegister, "GET", "/enterprises/1002345639", "", 200, "",
			[]check{field("name", "Klimaatadvies Noordzee")}},
		{"enterprise without directors", EnterpriseRegister, "GET", "/enterprises/0956789093", "", 200, "",
			[]check{field("status", "stopped")}},
		{"enterprise not found", EnterpriseRegister, "GET", "/enterprises/" + unusedEnterpriseNumber, "", 404, problemResourceNotFound, nil},
		{"enterprise bad checksum", EnterpriseRegister, "GET", "/enterprises/0912345674", "", 400, problemBadRequest,
			[]check{issue(issueInvalidInput, "path", "enterpriseNumber")}},
		{"enterprise not digits", EnterpriseRegister, "GET", "/enterprises/abc", "", 400, problemBadRequest, nil},
		{"enterprise too short", EnterpriseRegister, "GET", "/enterprises/091234567", "", 400, problemBadRequest, nil},
		{"enterprise misplaced dots", EnterpriseRegister, "GET", "/enterprises/09.12345.673", "", 400, problemBadRequest, nil},
		{"enterprise unknown query", EnterpriseRegister, "GET", "/enterprises/" + ExampleEnterprise + "?lang=nl", "", 400, problemBadRequest,
			[]check{issue(issueUnknownInput, "query", "lang")}},
		{"enterprise wrong method", EnterpriseRegister, "DELETE", "/enterprises/" + ExampleEnterprise, "", 405, "about:blank", nil},
		{"enterprise unknown path", EnterpriseRegister, "GET", "/companies/" + ExampleEnterprise, "", 404, problemResourceNotFound, nil},
		{"search one", EnterpriseRegister, "GET", "/enterprises?name=BAKKER", "", 200, "", []check{items(ExampleEnterprise)}},
		{"search accents and case", EnterpriseRegister, "GET", "/enterprises?name=" + url.QueryEscape("SAINT-HUBERT"), "", 200, "", []check{items("0901234522")}},
		{"search several sorted by name", EnterpriseRegister, "GET", "/enterprises?name=de", "", 200, "",
			[]check{items("0989012394", "0990123441", "0956789093", "0913579157")}},
		{"search none", EnterpriseRegister, "GET", "/enterprises?name=zzz", "", 200, "", []check{items()}},
		{"search without name", EnterpriseRegister, "GET", "/enterprises", "", 400, problemBadRequest,
			[]check{issue(issueRequiredInput, "query", "name")}},
		{"search blank name", EnterpriseRegister, "GET", "/enterprises?name=%20", "", 400, problemBadRequest, nil},
		{"search unknown query", EnterpriseRegister, "GET", "/enterprises?name=de&page=2", "", 400, problemBadRequest,
			[]check{issue(issueUnknownInput, "query", "page")}},

		// person register
		{"person health", PersonRegister, "GET", "/health", "", 200, "", []check{field("status", "UP")}},
		{"person found", PersonRegister, "POST", "/persons/get", `{"ssin":"` + ExampleSSIN + `"}`, 200, "",
			[]check{field("givenName", "Marc"), field("familyName", "Vandaele"), field("deceased", false), absent("deathDate")}},
		{"person born 2000 or later", PersonRegister, "POST", "/persons/get", `{"ssin":"00010100204"}`, 200, "",
			[]check{field("birthDate", "2000-01-01")}},
		{"person deceased", PersonRegister, "POST", "/persons/get", `{"ssin":"47021506697"}`, 200, "",
			[]check{field("deceased", true), field("deathDate", "2022-11-08")}},
		{"person not found", PersonRegister, "POST", "/persons/get", `{"ssin":"` + unknownSSIN + `"}`, 404, problemResourceNotFound,
			[]check{noSSINEcho}},
		{"person bad checksum", PersonRegister, "POST", "/persons/get", `{"ssin":"68031401743"}`, 400, problemBadRequest,
			[]check{issue(issueInvalidInput, "body", "ssin"), noSSINEcho}},
		{"person short ssin", PersonRegister, "POST", "/persons/get", `{"ssin":"680314"}`, 400, problemBadRequest, nil},
		{"person ssin as number", PersonRegister, "POST", "/persons/get", `{"ssin":68031401742}`, 400, problemBadRequest,
			[]check{issue(issueSchemaViolation, "body", "ssin")}},
		{"person empty ssin", PersonRegister, "POST", "/persons/get", `{"ssin":""}`, 400, problemBadRequest,
			[]check{issue(issueRequiredInput, "body", "ssin")}},
		{"person missing ssin", PersonRegister, "POST", "/persons/get", `{}`, 400, problemBadRequest,
			[]check{issue(issueRequiredInput, "body", "ssin")}},
		{"person unknown field", PersonRegister, "POST", "/persons/get", `{"ssin":"` + ExampleSSIN + `","purpose":"x"}`, 400, problemBadRequest,
			[]check{issue(issueUnknownInput, "body", "purpose")}},
		{"person no body", PersonRegister, "POST", "/persons/get", "", 400, problemBadRequest,
			[]check{issue(issueRequiredInput, "body", "")}},
		{"person broken json", PersonRegister, "POST", "/persons/get", `{"ssin":`, 400, problemBadRequest,
			[]check{issue(issueSchemaViolation, "body", "")}},
		{"person array body", PersonRegister, "POST", "/persons/get", `["` + ExampleSSIN + `"]`, 400, problemBadRequest, nil},
		{"person null body", PersonRegister, "POST", "/persons/get", `null`, 400, problemBadRequest, nil},
		{"person trailing data", PersonRegister, "POST", "/persons/get", `{"ssin":"` + ExampleSSIN + `"}{}`, 400, problemBadRequest, nil},
		{"person body too large", PersonRegister, "POST", "/persons/get", big, 413, problemPayloadTooLarge, nil},
		{"person ssin in url refused", PersonRegister, "GET", "/persons/get?ssin=" + ExampleSSIN, "", 405, "about:blank", nil},
		{"person by path unknown", PersonRegister, "GET", "/persons/" + ExampleSSIN, "", 404, problemResourceNotFound, nil},

		// VAT register
		{"vat health", VATRegister, "GET", "/health", "", 200, "", []check{field("status", "UP")}},
		{"vat found employer", VATRegister, "GET", "/vat/" + ExampleEnterprise, "", 200, "",
			[]check{field("vatNumber", "BE"+ExampleEnterprise), field("vatActive", true), func(t *testing.T, r response) {
				emp, _ := r.json["employer"].(map[string]any)
				if emp["jointCommittee"] != "118" || emp["employees"] != float64(48) {
					t.Errorf("employer = %v", emp)
				}
			}}},
		{"vat found with dots", VATRegister, "GET", "/vat/0934.567.878", "", 200, "",
			[]check{field("enterpriseNumber", "0934567878"), absent("employer")}},
		{"vat inactive", VATRegister, "GET", "/vat/0956789093", "", 200, "", []check{field("vatActive", false)}},
		{"vat not registered", VATRegister, "GET", "/vat/0945678932", "", 404, problemResourceNotFound, nil},
		{"vat unknown enterprise", VATRegister, "GET", "/vat/" + unusedEnterpriseNumber, "", 404, problemResourceNotFound, nil},
		{"vat malformed", VATRegister, "GET", "/vat/BE0912345673", "", 400, problemBadRequest,
			[]check{issue(issueInvalidInput, "path", "enterpriseNumber")}},
		{"vat unavailable", VATRegister, "GET", "/vat/" + UnavailableVATEnterprise, "", 503, problemServiceUnavailable,
			[]check{func(t *testing.T, r response) {
				if r.header.Get("Retry-After") == "" {
					t.Error("no Retry-After on 503")
				}
			}}},
		{"vat unavailable with dots", VATRegister, "GET", "/vat/0978.901.234", "", 503, problemServiceUnavailable, nil},
		{"vat wrong method", VATRegister, "POST", "/vat/" + ExampleEnterprise, "{}", 405, "about:blank", nil},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := do(t, c, tc.method, s.URL(tc.source)+tc.path, tc.body, map[string]string{headerTraceID: callerTraceID})
			if r.status != tc.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tc.wantStatus, r.body)
			}
			own := r.header.Get(headerTraceID)
			if len(own) != 36 || own == callerTraceID {
				t.Errorf("%s = %q, want a fresh 36-character id", headerTraceID, own)
			}
			if got := r.header.Get(headerRelatedTraceID); got != callerTraceID {
				t.Errorf("%s = %q, want %q", headerRelatedTraceID, got, callerTraceID)
			}
			ct := r.header.Get("Content-Type")
			if tc.wantProblem == "" {
				if ct != "application/json" {
					t.Errorf("Content-Type %q, want application/json", ct)
				}
			} else {
				if ct != "application/problem+json" {
					t.Errorf("Content-Type %q, want application/problem+json", ct)
				}
				if r.json["type"] != tc.wantProblem || r.json["status"] != float64(tc.wantStatus) || r.json["title"] == "" {
					t.Errorf("problem %s: want type %s and status %d", r.body, tc.wantProblem, tc.wantStatus)
				}
				if r.json["instance"] != "urn:uuid:"+own {
					t.Errorf("instance %v, want urn:uuid:%s", r.json["instance"], own)
				}
			}
			for _, check := range tc.checks {
				check(t, r)
			}
		})
	}
}

func TestTraceIDs(t *testing.T) {
	s := startDemo(t, options{slowDelay: SlowVATDelay}, nil)
	c := newClient(2 * time.Second)
	url := s.URL(EnterpriseRegister) + "/health"

	first := do(t, c, "GET", url, "", nil)
	if got := first.header.Get(headerRelatedTraceID); got != "" {
		t.Errorf("no caller trace id, yet %s = %q", headerRelatedTraceID, got)
	}
	second := do(t, c, "GET", url, "", map[string]string{headerTraceID: strings.Repeat("x", 37)})
	if got := second.header.Get(headerRelatedTraceID); got != "" {
		t.Errorf("a 37-character trace id was echoed: %q", got)
	}
	if a, b := first.header.Get(headerTraceID), second.header.Get(headerTraceID); a == "" || a == b {
		t.Errorf("trace ids %q and %q: want two fresh ones", a, b)
	}
}

func TestSlowVATTimesOut(t *testing.T) {
	s := startDemo(t, options{slowDelay: SlowVATDelay}, nil)
	c := newClient(200 * time.Millisecond)

	began := time.Now()
	resp, err := c.Get(s.URL(VATRegister) + "/vat/" + SlowVATEnterprise)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("slow VAT answered %d within 200 ms, want a timeout", resp.StatusCode)
	}
	var ue *url.Error
	if !errors.As(err, &ue) || !ue.Timeout() {
		t.Fatalf("error %v, want a client timeout", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("timing out took %v", d)
	}
	// Every other enterprise answers at once.
	if r := do(t, c, "GET", s.URL(VATRegister)+"/vat/"+ExampleEnterprise, "", nil); r.status != 200 {
		t.Errorf("example VAT record: status %d", r.status)
	}
}

func TestSlowVATAnswersAfterDelay(t *testing.T) {
	const delay = 150 * time.Millisecond
	s := startDemo(t, options{slowDelay: delay}, nil)
	began := time.Now()
	r := do(t, newClient(5*time.Second), "GET", s.URL(VATRegister)+"/vat/"+SlowVATEnterprise, "", nil)
	if r.status != 200 || r.json["enterpriseNumber"] != SlowVATEnterprise {
		t.Errorf("status %d body %s, want the VAT record", r.status, r.body)
	}
	if d := time.Since(began); d < delay {
		t.Errorf("answered after %v, want at least %v", d, delay)
	}
}

func TestCloseReleasesSlowRequest(t *testing.T) {
	s, err := Start(demoDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := newClient(10 * time.Second).Get(s.URL(VATRegister) + "/vat/" + SlowVATEnterprise)
		if err != nil {
			done <- result{err: err}
			return
		}
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	time.Sleep(200 * time.Millisecond) // let the request reach its wait

	began := time.Now()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Close took %v with a slow request in flight, want it released at once", d)
	}
	if r := <-done; r.err == nil && r.status != http.StatusServiceUnavailable {
		t.Errorf("parked request got %d, want 503", r.status)
	}
}

func TestCloseShutsDown(t *testing.T) {
	s, err := Start(demoDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Names(), ","); got != "enterpriseRegister,personRegister,vatRegister" {
		t.Errorf("Names() = %s", got)
	}
	s.Names()[0] = "changed"
	if s.Names()[0] != EnterpriseRegister {
		t.Error("Names() shares its slice with the caller")
	}
	if s.URL("nope") != "" {
		t.Errorf("URL(unknown) = %q, want empty", s.URL("nope"))
	}
	c := newClient(2 * time.Second)
	seen := map[string]bool{}
	for _, name := range s.Names() {
		u := s.URL(name)
		if !strings.HasPrefix(u, "http://127.0.0.1:") || seen[u] {
			t.Errorf("URL(%s) = %q, want a distinct http://127.0.0.1:PORT", name, u)
		}
		seen[u] = true
		if r := do(t, c, "GET", u+"/health", "", nil); r.status != 200 {
			t.Errorf("%s health before Close: %d", name, r.status)
		}
	}

	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	c.CloseIdleConnections()
	for _, name := range s.Names() {
		if resp, err := c.Get(s.URL(name) + "/health"); err == nil {
			resp.Body.Close()
			t.Errorf("%s still answers after Close: %d", name, resp.StatusCode)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// syncBuffer is a bytes.Buffer that the servers' goroutines can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRequestLog(t *testing.T) {
	var buf syncBuffer
	log := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := Start(demoDir, log)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(2 * time.Second)
	do(t, c, "POST", s.URL(PersonRegister)+"/persons/get", `{"ssin":"`+ExampleSSIN+`"}`, map[string]string{headerTraceID: callerTraceID})
	// Close waits for the handlers, so their log lines are written by now.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var found bool
	for line := range strings.Lines(buf.String()) {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == "mock source request" && rec["level"] == "DEBUG" && rec["source"] == PersonRegister &&
			rec["method"] == "POST" && rec["path"] == "/persons/get" && rec["traceId"] == callerTraceID &&
			rec["status"] == float64(200) && rec["responseTraceId"] != "" {
			found = true
		}
	}
	if !found {
		t.Errorf("no Debug request log with source, method, path and trace id in:\n%s", buf.String())
	}
	if strings.Contains(buf.String(), ExampleSSIN) {
		t.Error("the log contains an ssin")
	}
}

func TestStartRefusesBadData(t *testing.T) {
	if _, err := Start(filepath.Join(t.TempDir(), "missing"), nil); err == nil {
		t.Error("Start on a missing directory succeeded")
	}

	tests := []struct {
		name, file, old, new, wantErr string
	}{
		{"enterprise checksum", enterprisesFile, `"0912345673"`, `"0912345674"`, "invalid enterprise number"},
		{"ssin checksum", personsFile, `"68031401742"`, `"68031401743"`, "invalid ssin"},
		{"ssin century", personsFile, `"00010100204"`, `"00010100272"`, "does not match birthDate"},
		{"unknown field", vatFile, `"vatActive"`, `"vatActiv"`, "unknown field"},
		{"vat for unknown enterprise", vatFile, `0912345673"`, `0999999922"`, "not in enterprises.json"},
		{"bad status", enterprisesFile, `"stopped"`, `"closed"`, "status"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range []string{enterprisesFile, personsFile, vatFile} {
				raw, err := os.ReadFile(filepath.Join(demoDir, f))
				if err != nil {
					t.Fatal(err)
				}
				if f == tc.file {
					if !bytes.Contains(raw, []byte(tc.old)) {
						t.Fatalf("%s does not contain %s", f, tc.old)
					}
					raw = bytes.ReplaceAll(raw, []byte(tc.old), []byte(tc.new))
				}
				if err := os.WriteFile(filepath.Join(dir, f), raw, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Start(dir, nil)
			if err == nil {
				s.Close()
				t.Fatal("Start succeeded on bad data")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %q, want it to mention %q", err, tc.wantErr)
			}
		})
	}
}
