package audit

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"testing"
)

// payloadV1 is the v1 record after the frame, frozen here: the store wrote
// it until version 2 added env, sources[].subject and subjectClear. Decode
// reads v1 records with payloadV2; TestV1IsV2WithoutItsNewFields shows
// that this is exact, and TestGoldenRecords decodes the committed v1 files.
type payloadV1 struct {
	Kind           Kind        `json:"kind"`
	Call           string      `json:"call"`
	Request        uint64      `json:"request,omitempty"`
	Organisation   string      `json:"org,omitempty"`
	Application    string      `json:"app,omitempty"`
	Credential     string      `json:"cred,omitempty"`
	ClientIP       string      `json:"clientIp,omitempty"`
	EndUser        string      `json:"endUser,omitempty"`
	Purpose        string      `json:"purpose,omitempty"`
	Grant          string      `json:"grant,omitempty"`
	LegalBasis     string      `json:"legalBasis,omitempty"`
	Service        string      `json:"service,omitempty"`
	ServiceVersion string      `json:"serviceVersion,omitempty"`
	Subject        string      `json:"subject,omitempty"`
	SubjectClear   string      `json:"subjectClear,omitempty"`
	TraceIn        string      `json:"traceIn,omitempty"`
	TraceOut       string      `json:"traceOut,omitempty"`
	Decision       *decisionV2 `json:"decision,omitempty"`
	Status         int         `json:"status,omitempty"`
	Problem        string      `json:"problem,omitempty"`
	Digest         string      `json:"digest,omitempty"`
	Released       []string    `json:"released,omitempty"`
	Sources        []sourceV1  `json:"sources,omitempty"`
	RequestBody    *sealedV2   `json:"requestBody,omitempty"`
	ResponseBody   *sealedV2   `json:"responseBody,omitempty"`
}

type sourceV1 struct {
	Source      string `json:"source"`
	Operation   string `json:"operation,omitempty"`
	TraceID     string `json:"traceId,omitempty"`
	SourceTrace string `json:"sourceTrace,omitempty"`
	Status      int    `json:"status,omitempty"`
	LatencyUs   int64  `json:"latencyUs"`
	Bytes       int64  `json:"bytes,omitempty"`
	Attempts    int    `json:"attempts,omitempty"`
	Digest      string `json:"digest,omitempty"`
	Error       string `json:"error,omitempty"`
}

// TestV1IsV2WithoutItsNewFields: a record without env and per-source
// subjects has the same bytes in v1 and v2, and v1's bytes decode through v2's
// struct to what v1's own struct reads: v1 records stay readable as they
// were written.
func TestV1IsV2WithoutItsNewFields(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		r := randomRecord(rng)
		r.Environment = ""
		for i := range r.Sources {
			r.Sources[i].Subject, r.Sources[i].SubjectClear = "", ""
		}
		var v2 payloadV2
		v2.from(r)
		v1 := payloadV1{Kind: v2.Kind, Call: v2.Call, Request: v2.Request, Organisation: v2.Organisation,
			Application: v2.Application, Credential: v2.Credential, ClientIP: v2.ClientIP, EndUser: v2.EndUser,
			Purpose: v2.Purpose, Grant: v2.Grant, LegalBasis: v2.LegalBasis, Service: v2.Service,
			ServiceVersion: v2.ServiceVersion, Subject: v2.Subject, SubjectClear: v2.SubjectClear,
			TraceIn: v2.TraceIn, TraceOut: v2.TraceOut, Decision: v2.Decision, Status: v2.Status,
			Problem: v2.Problem, Digest: v2.Digest, Released: v2.Released,
			RequestBody: v2.RequestBody, ResponseBody: v2.ResponseBody}
		for _, s := range v2.Sources {
			v1.Sources = append(v1.Sources, sourceV1{Source: s.Source, Operation: s.Operation, TraceID: s.TraceID,
				SourceTrace: s.SourceTrace, Status: s.Status, LatencyUs: s.LatencyUs, Bytes: s.Bytes,
				Attempts: s.Attempts, Digest: s.Digest, Error: s.Error})
		}
		b1, err := json.Marshal(&v1)
		if err != nil {
			t.Fatal(err)
		}
		if b2 := appendPayload(nil, r); !bytes.Equal(b1, b2) {
			t.Fatalf("v1 and v2 bytes differ\nv1 %s\nv2 %s", b1, b2)
		}
		var back1 payloadV1
		var back2 payloadV2
		if err := json.Unmarshal(b1, &back1); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b1, &back2); err != nil {
			t.Fatal(err)
		}
		read1, _ := json.Marshal(&back1)
		read2, _ := json.Marshal(&back2)
		if !bytes.Equal(read1, read2) {
			t.Fatalf("v1 bytes read through v2 differ from v1's own reading\n v2 %s\n v1 %s", read2, read1)
		}
	}
}
