package mocksrc

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestVIES: valid, not valid, and the faults, in the shapes of the real
// service's messages.
func TestVIES(t *testing.T) {
	v, err := StartVIES(demoDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	ask := func(country, number string) (int, string) {
		t.Helper()
		env := `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><ns1:checkVat xmlns:ns1="urn:ec.europa.eu:taxud:vies:services:checkVat:types"><ns1:countryCode>` +
			country + `</ns1:countryCode><ns1:vatNumber>` + number + `</ns1:vatNumber></ns1:checkVat></soap:Body></soap:Envelope>`
		req, _ := http.NewRequest("POST", v.URL, strings.NewReader(env))
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		req.Header.Set("SOAPAction", `""`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		country, number string
		status          int
		want            string
	}{
		{"BE", ExampleEnterprise, 200, "<ns2:valid>true</ns2:valid><ns2:name>NV ZONNEBLOEM BAKKERIJEN</ns2:name><ns2:address>KORTRIJKSESTEENWEG 412&#xA;9000 GENT</ns2:address>"},
		{"BE", "0956789093", 200, "<ns2:valid>false</ns2:valid><ns2:name>---</ns2:name>"}, // VAT no longer active
		{"BE", UnavailableVATEnterprise, 500, "<faultstring>MS_UNAVAILABLE</faultstring>"},
		{"NL", ExampleEnterprise, 500, "<faultstring>INVALID_INPUT</faultstring>"},
	} {
		if status, body := ask(c.country, c.number); status != c.status || !strings.Contains(body, c.want) {
			t.Errorf("%s%s: %d %s", c.country, c.number, status, body)
		}
	}
}
