package loadbench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/valyala/fasthttp"
)

// The three backends answer GET /items/{id} with a ~1 KiB JSON object each:
// an enterprise, a person and a VAT record. The id is spliced into a
// precomputed body so that a backend costs the same for every candidate and
// as little as possible.
const idMark = "{{ID}}"

var backendBodies = [3]string{
	// a: an enterprise from an enterprise register.
	`{"enterpriseNumber":"{{ID}}","name":"Brasserie Van Den Bossche & Zonen","abbreviation":"BVDB",` +
		`"status":"active","juridicalForm":{"code":"610","label":"Besloten vennootschap"},` +
		`"startDate":"1998-03-17","address":{"street":"Kapellestraat","number":"112","box":"B",` +
		`"postalCode":"9300","municipality":"Aalst","country":"BE"},` +
		`"contact":{"email":"info@bvdb.example","phone":"+32 53 21 45 67","website":"https://bvdb.example"},` +
		`"activities":[{"nace":"11.050","label":"Manufacture of beer","main":true,"since":"1998-03-17"},` +
		`{"nace":"46.341","label":"Wholesale of beverages","main":false,"since":"2004-09-01"},` +
		`{"nace":"56.301","label":"Cafés and bars","main":false,"since":"2011-05-12"}],` +
		`"establishments":[{"number":"2.145.678.901","name":"Brouwerij Aalst","postalCode":"9300"},` +
		`{"number":"2.256.789.012","name":"Proeflokaal Gent","postalCode":"9000"}],` +
		`"directors":["85073003328","79120512345","90021712345"],"capital":{"amount":250000,"currency":"EUR"},` +
		`"employees":47,"lastFiling":"2024-06-28","vatLiable":true,"updatedAt":"2025-01-14T09:31:07Z"}`,
	// b: a person from a national register.
	`{"ssin":"85073003328","id":"{{ID}}","givenName":"Annelies","familyName":"Van Den Bossche",` +
		`"otherGivenNames":["Maria","Josephina"],"birthDate":"1985-07-30","birthPlace":{"municipality":"Aalst",` +
		`"postalCode":"9300","country":"BE"},"gender":"F","nationality":"BE","civilStatus":"married",` +
		`"language":"nl","address":{"street":"Molenstraat","number":"8","postalCode":"9320",` +
		`"municipality":"Erembodegem","country":"BE","since":"2012-10-01"},` +
		`"household":{"reference":"HH-4471-2291","members":3},` +
		`"identityCard":{"number":"592-1234567-89","validFrom":"2021-02-03","validUntil":"2031-02-03","issuer":"Aalst"},` +
		`"mandates":[{"enterpriseNumber":"{{ID}}","role":"director","since":"2015-06-01"},` +
		`{"enterpriseNumber":"0456789123","role":"shareholder","since":"2019-11-20"}],` +
		`"professionalStatus":"selfEmployed","socialSecurityRegime":"selfEmployed",` +
		`"contactPreferences":{"eBox":true,"paperMail":false},"deceased":false,` +
		`"source":"national register (synthetic)","updatedAt":"2025-02-02T16:04:55Z"}`,
	// c: a VAT and employer record.
	`{"vatNumber":"BE{{ID}}","enterpriseNumber":"{{ID}}","vatActive":true,"regime":"normal",` +
		`"registeredSince":"1998-04-01","periodicity":"monthly","lastReturn":{"period":"2025-01",` +
		`"filedAt":"2025-02-18","status":"accepted"},"balance":{"amount":-1832.55,"currency":"EUR",` +
		`"dueDate":"2025-03-20"},"intraCommunity":{"active":true,"since":"2006-01-01",` +
		`"lastListing":"2024-Q4"},"employer":{"nsso":"123-4567890-12","employees":47,` +
		`"jointCommittee":"118.03","lastDmfa":"2024-Q4","categories":[{"code":"010","label":"workers","count":31},` +
		`{"code":"495","label":"employees","count":16}]},"withholdingTax":{"regime":"monthly","lastReturn":"2025-01"},` +
		`"inspections":[{"year":2019,"outcome":"no remarks"},{"year":2023,"outcome":"minor correction",` +
		`"amount":412.3}],"bankAccount":{"iban":"BE71096123456769","bic":"GKCCBEBB","verified":true},` +
		`"flags":{"sanctioned":false,"bankrupt":false,"inLiquidation":false},"updatedAt":"2025-02-19T07:12:40Z"}`,
}

// BackendBody returns the body backend i (0, 1, 2) answers for id.
func BackendBody(i int, id string) []byte {
	return []byte(strings.ReplaceAll(backendBodies[i], idMark, id))
}

// backend is one running fasthttp server.
type backend struct {
	srv  *fasthttp.Server
	addr string
	done chan error
}

// URL is the backend's base URL.
func (b *backend) URL() string { return "http://" + b.addr }

func startBackend(i int) (*backend, error) {
	parts := bytes.Split([]byte(backendBodies[i]), []byte(idMark))
	h := func(ctx *fasthttp.RequestCtx) {
		p := ctx.Path()
		id, ok := bytes.CutPrefix(p, []byte("/items/"))
		if !ctx.IsGet() || !ok || !validID(id) {
			ctx.SetStatusCode(fasthttp.StatusNotFound)
			ctx.SetContentType("application/problem+json")
			ctx.SetBodyString(`{"type":"urn:problem-type:belgif:resourceNotFound","status":404}`)
			return
		}
		ctx.SetContentType("application/json")
		ctx.Response.Header.Set("Cache-Control", "no-store")
		var buf [2048]byte
		out := buf[:0]
		for j, part := range parts {
			if j > 0 {
				out = append(out, id...)
			}
			out = append(out, part...)
		}
		ctx.SetBody(out) // copies
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("backend %c: %w", 'a'+i, err)
	}
	b := &backend{
		srv: &fasthttp.Server{
			Handler:               h,
			Name:                  "bench-backend",
			NoDefaultServerHeader: true,
			ReadTimeout:           30 * time.Second,
			WriteTimeout:          30 * time.Second,
			IdleTimeout:           60 * time.Second,
		},
		addr: ln.Addr().String(),
		done: make(chan error, 1),
	}
	go func() { b.done <- b.srv.Serve(ln) }()
	return b, nil
}

func (b *backend) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.srv.ShutdownWithContext(ctx)
	<-b.done
}

// validID accepts 1 to 32 letters, digits, '.', '-' or '_'.
func validID(id []byte) bool {
	if len(id) == 0 || len(id) > 32 {
		return false
	}
	for _, c := range id {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
