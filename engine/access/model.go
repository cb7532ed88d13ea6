package access

import (
	"fmt"
	"net/netip"
	"time"
)

// recordVersion is the version written into every stored record. A record
// with a higher version was written by a newer OpenFSB and is refused at
// Open rather than half-read; lower versions are upgraded when decoded.
const recordVersion = 1

// Hold is an administrative stop laid over any record's onboarding state.
// Suspended can be resumed; revoked is final.
type Hold string

// The holds.
const (
	NoHold    Hold = ""
	Suspended Hold = "suspended"
	Revoked   Hold = "revoked"
)

// Environment is where a call is served: the test endpoints used by the
// connection test, or production.
type Environment string

// The environments.
const (
	Test       Environment = "test"
	Production Environment = "production"
)

func (e Environment) valid() bool { return e == Test || e == Production }

// Organisation is a consumer organisation, identified by its Belgian
// enterprise number (10 digits, normalised).
type Organisation struct {
	V                int        `json:"v"`
	EnterpriseNumber string     `json:"enterpriseNumber"`
	Name             string     `json:"name"`
	State            OrgState   `json:"state"`
	Agreement        *Agreement `json:"agreement,omitempty"`
	Hold             Hold       `json:"hold,omitempty"`
	Created          time.Time  `json:"created"`
}

// Agreement is the signed user agreement.
type Agreement struct {
	Version string    `json:"version"`
	Signer  string    `json:"signer"`
	Signed  time.Time `json:"signed"`
}

// Application is one system of an organisation that calls services. Its
// allowlist holds the source addresses its calls may come from; an empty
// allowlist admits no call.
type Application struct {
	V            int            `json:"v"`
	ID           string         `json:"id"`
	Organisation string         `json:"organisation"`
	Name         string         `json:"name"`
	Allowlist    []netip.Prefix `json:"allowlist,omitempty"`
	Hold         Hold           `json:"hold,omitempty"`
	Created      time.Time      `json:"created"`
}

// CredentialKind says how a credential proves the caller.
type CredentialKind string

// The credential kinds.
const (
	// Certificate is a TLS client certificate, pinned by the SHA-256 of its
	// DER encoding and verified against the configured CA pool.
	Certificate CredentialKind = "certificate"
	// OAuthClient is an OAuth2 client (client credentials grant); its id is
	// the credential id and its secret is stored hashed.
	OAuthClient CredentialKind = "oauthClient"
)

// Credential is one way an application authenticates.
type Credential struct {
	V           int            `json:"v"`
	ID          string         `json:"id"` // also the OAuth client_id
	Application string         `json:"application"`
	Kind        CredentialKind `json:"kind"`
	// Certificate credentials.
	Fingerprint string    `json:"fingerprint,omitempty"` // hex SHA-256 of the leaf's DER
	Subject     string    `json:"subject,omitempty"`
	NotAfter    time.Time `json:"notAfter,omitzero"`
	DER         []byte    `json:"der,omitempty"`
	// OAuth client credentials.
	SecretHash *SecretHash `json:"secretHash,omitempty"`
	Hold       Hold        `json:"hold,omitempty"`
	Created    time.Time   `json:"created"`
}

// Service names a published service: its flow name and major version.
type Service struct {
	Name  string `json:"name"`
	Major int    `json:"major"`
}

func (s Service) String() string { return fmt.Sprintf("%s v%d", s.Name, s.Major) }

// LegalBasisKind is what kind of text allows the processing.
type LegalBasisKind string

// The legal basis kinds.
const (
	Law                LegalBasisKind = "law"
	ProtocolAgreement  LegalBasisKind = "protocolAgreement"
	PriorAuthorisation LegalBasisKind = "priorAuthorisation"
)

// LegalBasis is the machine-readable legal ground of a grant.
type LegalBasis struct {
	Kind      LegalBasisKind `json:"kind"`
	Reference string         `json:"reference"` // e.g. "Law of 8 August 1983, art. 5"
	Link      string         `json:"link,omitempty"`
}

// Quota limits a grant to Requests calls per Period (fixed windows aligned
// on multiples of Period since the Unix epoch). A zero Quota is unlimited.
type Quota struct {
	Requests int           `json:"requests"`
	Period   time.Duration `json:"period"`
}

// GrantTerms is what a consumer asks for and the integrator approves: a
// service, for purposes, under a legal basis, within a validity window.
type GrantTerms struct {
	Service     Service     `json:"service"`
	LegalBasis  LegalBasis  `json:"legalBasis"`
	Purposes    []string    `json:"purposes"`
	NotBefore   time.Time   `json:"notBefore,omitzero"`
	NotAfter    time.Time   `json:"notAfter,omitzero"` // zero: no end
	Environment Environment `json:"environment"`
	Quota       Quota       `json:"quota,omitzero"`
	// Fields lists the response paths (sdk/jsonx syntax, e.g.
	// directors[*].name) the legal basis covers. Nil releases the whole
	// response; an empty, non-nil list releases nothing but an empty object.
	Fields []string `json:"fields,omitempty"`
}

// Grant lets one application call one service under GrantTerms, once
// onboarding has brought it to GrantActive.
type Grant struct {
	V           int    `json:"v"`
	ID          string `json:"id"`
	Application string `json:"application"`
	GrantTerms
	State    GrantState      `json:"state"`
	Hold     Hold            `json:"hold,omitempty"`
	LastTest *ConnectionTest `json:"lastTest,omitempty"`
	Created  time.Time       `json:"created"`
}

// ConnectionTest is the result of one automated connection test of a grant.
type ConnectionTest struct {
	At     time.Time `json:"at"`
	Checks []Check   `json:"checks"`
	Passed bool      `json:"passed"` // set by RecordConnectionTest
}

// Check is one check of a connection test.
type Check struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	Detail string `json:"detail,omitempty"`
}

// The checks a connection test must contain, all passed, to unlock
// production (issue 4: TLS and certificate binding, a wrong purpose refused,
// the trace id echoed, the audit record retrievable).
const (
	CheckTLS              = "tls"
	CheckCertBinding      = "certificateBinding"
	CheckWrongPurpose     = "wrongPurposeRefused"
	CheckTraceID          = "traceIdEchoed"
	CheckAuditRetrievable = "auditRecordRetrievable"
)

// RequiredChecks lists the checks of a passing connection test.
var RequiredChecks = []string{CheckTLS, CheckCertBinding, CheckWrongPurpose, CheckTraceID, CheckAuditRetrievable}

// LogEntry is one admin action in the append-only admin log.
type LogEntry struct {
	V       int       `json:"v"`
	Seq     uint64    `json:"seq"`
	At      time.Time `json:"at"`
	Actor   string    `json:"actor"`
	Action  string    `json:"action"`
	Subject string    `json:"subject"` // the id of the record acted on
	Before  string    `json:"before,omitempty"`
	After   string    `json:"after,omitempty"`
	Detail  string    `json:"detail,omitempty"`
}
