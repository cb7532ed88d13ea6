package soap_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/openfsb/fsb/engine/connector"
)

// BenchmarkCall is one checkVat call through the client with the native
// codec against a loopback mock: encode, HTTP round trip, decode.
func BenchmarkCall(b *testing.B) {
	p := load(b, "checkVatService.wsdl", "")
	answer := message(b, "checkVat.response.xml")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		w.Write(answer)
	}))
	b.Cleanup(srv.Close)
	c := client(b, p, srv.URL, nil)
	req := &connector.Request{Operation: "checkVat", Body: message(b, "checkVat.request.json")}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
