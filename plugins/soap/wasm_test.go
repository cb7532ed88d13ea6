package soap_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openfsb/fsb/engine/connector"
	engine "github.com/openfsb/fsb/engine/connector/soap"
	"github.com/openfsb/fsb/engine/wasm"
	"github.com/openfsb/fsb/plugins/internal/plugintest"
	"github.com/openfsb/fsb/plugins/soap"
	"github.com/openfsb/fsb/sdk/guest"
)

const pkg = "github.com/openfsb/fsb/plugins/soap/wasm"

// module builds the plugin once per test binary.
var module struct {
	sync.Mutex
	bin []byte
}

func build(tb testing.TB) []byte {
	tb.Helper()
	module.Lock()
	defer module.Unlock()
	if module.bin == nil {
		module.bin = plugintest.Build(tb, pkg)
	}
	return module.bin
}

// TestWasm: the module gives the native output for every case, and fails
// where the native code fails.
func TestWasm(t *testing.T) {
	m := plugintest.Load(t, "soap", build(t), wasm.Untrusted)
	ctx := context.Background()
	for _, c := range append(okCases(), messageCases(t)...) {
		native, err := guest.Run(c.op, []byte(c.in), []byte(c.cfg))
		if err != nil {
			t.Fatalf("%s: native: %v", c.name, err)
		}
		out, err := m.Call(ctx, c.op, []byte(c.in), []byte(c.cfg))
		if err != nil {
			t.Errorf("%s: wasm: %v", c.name, err)
			continue
		}
		if string(out) != string(native) {
			t.Errorf("%s: wasm %s\nnative   %s", c.name, out, native)
		}
	}
	for _, c := range errCases() {
		if out, err := m.Call(ctx, c.op, []byte(c.in), []byte(c.cfg)); err == nil {
			t.Errorf("%s: wasm: no error, output %s", c.name, out)
		}
	}
}

// TestClientWasm: the engine's SOAP client with the sandboxed codec gives
// what it gives with the native one, against a mock VIES.
func TestClientWasm(t *testing.T) {
	m := plugintest.Load(t, "soap", build(t), wasm.Untrusted)
	dir := filepath.Join("..", "..", "engine", "connector", "soap", "testdata")
	w, err := engine.Load(filepath.Join(dir, "checkVatService.wsdl"))
	if err != nil {
		t.Fatal(err)
	}
	p, _ := w.Port("")
	answers := map[string]string{"0417497106": "checkVat.response.xml", "0000000000": "checkVat.invalid.xml", "1": "checkVat.fault.xml"}
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 4096)
		n, _ := r.Body.Read(buf)
		for vat, file := range answers {
			if strings.Contains(string(buf[:n]), ">"+vat+"<") {
				b, _ := os.ReadFile(filepath.Join(dir, "messages", file))
				if strings.Contains(file, "fault") {
					rw.WriteHeader(500)
				}
				rw.Write(b)
				return
			}
		}
		rw.WriteHeader(400)
	}))
	defer srv.Close()
	clients := map[string]*engine.Client{}
	for name, c := range map[string]engine.Codec{"native": soap.Native{}, "wasm": engine.ModuleCodec{Module: m}} {
		cl, err := engine.New(engine.Config{Source: "vies", Port: p, Endpoint: srv.URL, Codec: c})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		clients[name] = cl
	}
	for vat := range answers {
		var got [2]string
		for i, name := range []string{"native", "wasm"} {
			resp, err := clients[name].Call(context.Background(), &connector.Request{Operation: "checkVat", Body: []byte(`{"countryCode":"BE","vatNumber":"` + vat + `"}`)})
			if err != nil {
				got[i] = "error: " + err.Error()
			} else {
				got[i] = string(resp.Body)
			}
		}
		if got[0] != got[1] {
			t.Errorf("%s: native %s\nwasm   %s", vat, got[0], got[1])
		}
		if vat == "1" && !strings.Contains(got[1], "soap fault Server: MS_UNAVAILABLE") {
			t.Errorf("fault through wasm: %s", got[1])
		}
	}
}

// TestCommittedModule: plugins/soap/soap.wasm, the codec SOAP sources
// declare, is the build of this source.
func TestCommittedModule(t *testing.T) {
	plugintest.MatchesCommitted(t, "github.com/openfsb/fsb/plugins/soap/wasm", "soap.wasm")
}
