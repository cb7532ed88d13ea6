package mocksrc

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// VIES is a mock of the EU VIES checkVat service: SOAP 1.1,
// document/literal, the shape of the real WSDL
// (engine/connector/soap/testdata/checkVatService.wsdl), answering from
// the VAT register's data. A Belgian number with an active VAT record is
// valid, with the enterprise's name and address written as VIES writes
// them; any other Belgian number is not valid ("---"); another country is
// an INVALID_INPUT fault, and UnavailableVATEnterprise gets the
// MS_UNAVAILABLE fault that the real service sends when a member state's
// system is down.
type VIES struct {
	URL  string // the endpoint, http://127.0.0.1:PORT/taxation_customs/vies/services/checkVatService
	http *http.Server
	done chan struct{}
}

// VIESPath is the endpoint's path, as in the real service's address.
const VIESPath = "/taxation_customs/vies/services/checkVatService"

// StartVIES starts the mock on an ephemeral loopback port, with the data
// of dataDir (as Start reads it).
func StartVIES(dataDir string, log *slog.Logger) (*VIES, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	data, err := loadData(dataDir)
	if err != nil {
		return nil, fmt.Errorf("mock VIES: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("mock VIES: %w", err)
	}
	srcLog := log.With(slog.String("source", "vies"))
	mux := http.NewServeMux()
	mux.Handle("POST "+VIESPath, data.viesHandler())
	v := &VIES{
		URL: "http://" + ln.Addr().String() + VIESPath,
		http: &http.Server{
			Handler:           withTracing("vies", srcLog, mux),
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			ErrorLog:          slog.NewLogLogger(srcLog.Handler(), slog.LevelWarn),
		},
		done: make(chan struct{}),
	}
	go func() {
		defer close(v.done)
		if err := v.http.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			srcLog.Error("mock VIES stopped", slog.Any("error", err))
		}
	}()
	return v, nil
}

// Close stops the mock.
func (v *VIES) Close() error {
	err := v.http.Close()
	<-v.done
	return err
}

// checkVatRequest is the request element; namespaces are not checked
// (the codec writes the WSDL's).
type checkVatRequest struct {
	CountryCode string `xml:"Body>checkVat>countryCode"`
	VATNumber   string `xml:"Body>checkVat>vatNumber"`
}

const (
	viesTypesNS = "urn:ec.europa.eu:taxud:vies:services:checkVat:types"
	soapEnvNS   = "http://schemas.xmlsoap.org/soap/envelope/"
)

func (r *registers) viesHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		if !strings.HasPrefix(req.Header.Get("Content-Type"), "text/xml") || req.Header.Get("SOAPAction") == "" {
			viesFault(w, "Client", "INVALID_INPUT") // SOAP 1.1 needs both
			return
		}
		var in checkVatRequest
		if err := xml.NewDecoder(io.LimitReader(req.Body, 64<<10)).Decode(&in); err != nil || in.CountryCode == "" {
			viesFault(w, "Client", "INVALID_INPUT")
			return
		}
		if in.CountryCode != "BE" {
			viesFault(w, "Server", "INVALID_INPUT")
			return
		}
		number := strings.TrimPrefix(in.VATNumber, "BE")
		if number == UnavailableVATEnterprise {
			viesFault(w, "Server", "MS_UNAVAILABLE")
			return
		}
		valid, name, address := false, "---", "---"
		if v := r.vat[number]; v != nil && v.VATActive {
			if e := r.enterprises[number]; e != nil {
				valid = true
				name = strings.ToUpper(e.LegalForm + " " + e.Name)
				a := e.Address
				address = strings.ToUpper(a.Street + " " + a.HouseNumber + "\n" + a.PostalCode + " " + a.Municipality)
			}
		}
		var b strings.Builder
		b.WriteString(`<env:Envelope xmlns:env="` + soapEnvNS + `"><env:Header/><env:Body><ns2:checkVatResponse xmlns:ns2="` + viesTypesNS + `">`)
		for _, f := range [][2]string{
			{"countryCode", "BE"}, {"vatNumber", number}, {"requestDate", time.Now().Format("2006-01-02") + "+01:00"},
			{"valid", fmt.Sprint(valid)}, {"name", name}, {"address", address},
		} {
			b.WriteString("<ns2:" + f[0] + ">")
			_ = xml.EscapeText(&b, []byte(f[1]))
			b.WriteString("</ns2:" + f[0] + ">")
		}
		b.WriteString(`</ns2:checkVatResponse></env:Body></env:Envelope>`)
		io.WriteString(w, b.String())
	})
}

// viesFault answers a SOAP 1.1 fault as VIES does: HTTP 500, the reason
// one of its codes (INVALID_INPUT, MS_UNAVAILABLE …).
func viesFault(w http.ResponseWriter, code, reason string) {
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, `<env:Envelope xmlns:env="%s"><env:Header/><env:Body><env:Fault><faultcode>env:%s</faultcode><faultstring>%s</faultstring></env:Fault></env:Body></env:Envelope>`, soapEnvNS, code, reason)
}
