package rest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/rest"
)

func Example() {
	// A stand-in for a government source.
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q,"query":%q}`, r.URL.EscapedPath(), r.URL.RawQuery)
	}))
	defer src.Close()

	c, err := rest.New(rest.Config{
		Source:  "persons",
		BaseURL: src.URL + "/api/v1",
		Timeout: 2 * time.Second,
		Retry:   rest.Retry{Attempts: 3},
		Operations: map[string]rest.Operation{
			"getPerson": {Method: "GET", Path: "/persons/{ssin}", Query: map[string]string{"fields": "all"}},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	resp, err := c.Call(context.Background(), &connector.Request{
		Operation: "getPerson",
		Path:      map[string]string{"ssin": "85.07.30-033.28"},
		Query:     map[string]string{"lang": "nl"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(resp.Status, resp.Headers.Get("Content-Type"), string(resp.Body))

	_, err = c.Call(context.Background(), &connector.Request{Operation: "deletePerson"})
	fmt.Println(err)
	// Output:
	// 200 application/json {"path":"/api/v1/persons/85.07.30-033.28","query":"fields=all&lang=nl"}
	// source "persons" operation "deletePerson": unknown operation
}
