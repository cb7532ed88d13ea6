package problem

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestNew(t *testing.T) {
	tests := []struct {
		typ, wantType, wantTitle string
		status                   int
	}{
		{"resourceNotFound", BelgifPrefix + "resourceNotFound", "Resource Not Found", 404},
		{"badGateway", BelgifPrefix + "badGateway", "Bad Gateway", 502},
		{"urn:problem-type:acme:closed", "urn:problem-type:acme:closed", "Conflict", 409},
	}
	for _, tc := range tests {
		p := New(tc.typ, tc.status, "d")
		if p.Type != tc.wantType || p.Title != tc.wantTitle || p.Status != tc.status || p.Detail != "d" {
			t.Errorf("New(%q) = %+v", tc.typ, p)
		}
	}
	if g := GatewayTimeout("x"); g.Status != 504 || !strings.HasPrefix(g.Type, OpenFSBPrefix) {
		t.Errorf("GatewayTimeout = %+v", g)
	}
}

func TestJSONKeepsIssuesWhenAValueCannotBeEncoded(t *testing.T) {
	p := BadRequest("two issues",
		NewIssue(SchemaViolation, "body", "/age", math.Inf(1), "out of range"),
		NewIssue(UnknownInput, "body", "/x", nil, "unknown"))
	var back Problem
	if err := json.Unmarshal(p.JSON(), &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Issues) != 2 || back.Issues[0].Name != "/age" || back.Issues[1].Type != IssuePrefix+UnknownInput {
		t.Errorf("issues lost: %+v", back.Issues)
	}
	if back.Type != BelgifPrefix+"badRequest" || back.Status != 400 {
		t.Errorf("problem %+v", back)
	}
}
