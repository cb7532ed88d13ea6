package mocksrc

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

// enterpriseNumberDetail explains the accepted forms in a 400 issue.
const enterpriseNumberDetail = "an enterprise number is 10 digits starting with 0 or 1 (or written 0123.456.789) with a valid mod-97 check"

// enterpriseHandler serves the enterprise register:
//
//	GET /enterprises/{enterpriseNumber}  the enterprise
//	GET /enterprises?name=substring      {"items":[{enterpriseNumber,name,status}]}
func (d *registers) enterpriseHandler() http.Handler {
	mux := newMux()
	route(mux, http.MethodGet, "/enterprises/{enterpriseNumber}", func(w http.ResponseWriter, r *http.Request) {
		raw := r.PathValue("enterpriseNumber")
		issues := unknownQuery(r)
		n, ok := parseEnterpriseNumber(raw)
		if !ok {
			issues = append(issues, newIssue(issueInvalidInput, "path", "enterpriseNumber", raw, enterpriseNumberDetail))
		}
		if len(issues) > 0 {
			badRequest(w, issues...)
			return
		}
		e, ok := d.enterprises[n]
		if !ok {
			notFound(w, "No enterprise with number "+n)
			return
		}
		writeOK(w, e)
	})
	route(mux, http.MethodGet, "/enterprises", func(w http.ResponseWriter, r *http.Request) {
		issues := unknownQuery(r, "name")
		name := strings.TrimSpace(r.URL.Query().Get("name"))
		if name == "" {
			issues = append(issues, newIssue(issueRequiredInput, "query", "name", "",
				"name is required: a case-insensitive part of the enterprise name"))
		}
		if len(issues) > 0 {
			badRequest(w, issues...)
			return
		}
		needle := strings.ToLower(name)
		items := []enterpriseSummary{}
		for i, e := range d.byName {
			if strings.Contains(d.lowerNames[i], needle) {
				items = append(items, enterpriseSummary{EnterpriseNumber: e.EnterpriseNumber, Name: e.Name, Status: e.Status})
			}
		}
		writeOK(w, map[string]any{"items": items})
	})
	return mux
}

// maxPersonBody bounds a POST /persons/get body; the real one is ~30 bytes.
const maxPersonBody = 4 << 10

// personHandler serves the person register. The SSIN travels in the body,
// never in the URL (Belgif: sensitive identifiers stay out of URLs and logs):
//
//	POST /persons/get  {"ssin":"..."}  the person
func (d *registers) personHandler() http.Handler {
	mux := newMux()
	route(mux, http.MethodPost, "/persons/get", func(w http.ResponseWriter, r *http.Request) {
		if issues := unknownQuery(r); len(issues) > 0 {
			badRequest(w, issues...)
			return
		}
		ssin, issues, tooLarge := decodeSSINRequest(http.MaxBytesReader(w, r.Body, maxPersonBody))
		if tooLarge {
			writeProblem(w, problem{
				Type:   problemPayloadTooLarge,
				Status: http.StatusRequestEntityTooLarge,
				Detail: "The request body is larger than the register accepts",
			})
			return
		}
		if len(issues) > 0 {
			badRequest(w, issues...)
			return
		}
		p, ok := d.persons[ssin]
		if !ok {
			// The SSIN is not repeated back: it is personal data.
			notFound(w, "No person with this ssin")
			return
		}
		writeOK(w, p)
	})
	return mux
}

// decodeSSINRequest reads {"ssin":"..."} strictly: one JSON object, no other
// members, an SSIN with a valid check. The SSIN is never echoed in an issue.
func decodeSSINRequest(body io.Reader) (ssin string, issues []issue, tooLarge bool) {
	schema := func(detail string) []issue {
		return []issue{newIssue(issueSchemaViolation, "body", "", "", detail)}
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(body)
	err := dec.Decode(&fields)
	if err == nil {
		if _, tokErr := dec.Token(); !errors.Is(tokErr, io.EOF) {
			err = tokErr
			if err == nil {
				err = errors.New("trailing data")
			}
		}
	}
	var maxErr *http.MaxBytesError
	switch {
	case errors.As(err, &maxErr):
		return "", nil, true
	case errors.Is(err, io.EOF):
		return "", []issue{newIssue(issueRequiredInput, "body", "", "", `a JSON body {"ssin":"..."} is required`)}, false
	case err != nil || fields == nil:
		return "", schema(`the body must be exactly one JSON object {"ssin":"..."}`), false
	}

	for name := range fields {
		if name != "ssin" {
			issues = append(issues, newIssue(issueUnknownInput, "body", name, "", "unknown property"))
		}
	}
	slices.SortFunc(issues, func(a, b issue) int { return strings.Compare(a.Name, b.Name) })
	raw, present := fields["ssin"]
	switch {
	case !present:
		issues = append(issues, newIssue(issueRequiredInput, "body", "ssin", "", "ssin is required"))
	case json.Unmarshal(raw, &ssin) != nil:
		issues = append(issues, newIssue(issueSchemaViolation, "body", "ssin", "", "ssin must be a string of 11 digits"))
	case ssin == "":
		issues = append(issues, newIssue(issueRequiredInput, "body", "ssin", "", "ssin is required"))
	case !validSSIN(ssin):
		issues = append(issues, newIssue(issueInvalidInput, "body", "ssin", "",
			"an ssin is 11 digits with a valid mod-97 check"))
	}
	return ssin, issues, false
}

// vatRetryAfter is the Retry-After, in seconds, of the unavailable answer.
const vatRetryAfter = "30"

// vatHandler serves the VAT/employer register:
//
//	GET /vat/{enterpriseNumber}  the VAT record
//
// Two enterprises misbehave on purpose (see SlowVATEnterprise and
// UnavailableVATEnterprise); every other answer is immediate.
func (d *registers) vatHandler(slowDelay time.Duration) http.Handler {
	mux := newMux()
	route(mux, http.MethodGet, "/vat/{enterpriseNumber}", func(w http.ResponseWriter, r *http.Request) {
		raw := r.PathValue("enterpriseNumber")
		issues := unknownQuery(r)
		n, ok := parseEnterpriseNumber(raw)
		if !ok {
			issues = append(issues, newIssue(issueInvalidInput, "path", "enterpriseNumber", raw, enterpriseNumberDetail))
		}
		if len(issues) > 0 {
			badRequest(w, issues...)
			return
		}
		switch n {
		case UnavailableVATEnterprise:
			unavailable(w, "The VAT register cannot answer for this enterprise right now")
			return
		case SlowVATEnterprise:
			t := time.NewTimer(slowDelay)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				// The caller gave up, or Close is shutting the sources down.
				unavailable(w, "The VAT register stopped before it could answer")
				return
			}
		}
		v, ok := d.vat[n]
		if !ok {
			notFound(w, "Enterprise "+n+" is not registered for VAT")
			return
		}
		writeOK(w, v)
	})
	return mux
}

func unavailable(w http.ResponseWriter, detail string) {
	w.Header().Set("Retry-After", vatRetryAfter)
	writeProblem(w, problem{
		Type:   problemServiceUnavailable,
		Status: http.StatusServiceUnavailable,
		Detail: detail,
	})
}
