package flowtest

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/soap"
	"github.com/openfsb/fsb/engine/flow"
	"github.com/openfsb/fsb/engine/spec"
)

// soapMock is what the mocks of a SOAP source add to the transport they
// replace. A mock's body is the operation's response as the flow sees it
// (JSON); the request still goes through the real codec first, so a body
// that does not fit the operation's schema fails the call as it would
// against the source; a mock's fault comes back as the client's
// *soap.FaultError; a status that is not 2xx fails the call like the
// client does (a SOAP source has no acceptStatus).
type soapMock struct {
	timeout time.Duration
	codec   soap.Codec        // nil when the codec plugin is not loaded: no request check
	configs map[string][]byte // codec configuration by operation
}

// newSOAPMock returns nil for a source that is not SOAP.
func newSOAPMock(set *spec.Set, src *spec.Source, plugins map[string]flow.Plugin) *soapMock {
	if src.SOAP == nil {
		return nil
	}
	s := &soapMock{timeout: src.SOAP.Timeout.D(), configs: map[string][]byte{}}
	if s.timeout == 0 {
		s.timeout = soap.DefaultTimeout
	}
	p := src.SOAP.WSDLPort()
	if pl := plugins[src.SOAP.Codec]; pl != nil && p != nil {
		s.codec = soap.ModuleCodec{Module: pl}
		for _, name := range p.Operations() {
			op, _ := p.Operation(name)
			if cfg, err := op.CodecConfig(soap.Limits{}); err == nil {
				s.configs[name] = cfg
			}
		}
	}
	return s
}

// encode builds the envelope of req with the real codec; an error is the
// client's: connector.ErrBadRequest naming the field.
func (s *soapMock) encode(ctx context.Context, source string, req *connector.Request) error {
	if s == nil || s.codec == nil {
		return nil
	}
	cfg, ok := s.configs[req.Operation]
	if !ok {
		return &connector.Error{Source: source, Operation: req.Operation, Kind: connector.ErrUnknownOp}
	}
	if _, err := s.codec.Encode(ctx, req.Body, cfg); err != nil {
		return &connector.Error{Source: source, Operation: req.Operation, Kind: connector.ErrBadRequest, Detail: "the request does not fit the operation's schema", Err: err}
	}
	return nil
}

// answer returns the error the client would return for mk: its fault, or
// a status that is not 2xx.
func (s *soapMock) answer(source string, req *connector.Request, mk *spec.Mock) error {
	if s == nil {
		return nil
	}
	if f := mk.Fault; f != nil {
		status := f.Status
		if status == 0 {
			status = http.StatusInternalServerError
		}
		return &soap.FaultError{Source: source, Operation: req.Operation, Status: status, Code: f.Code, Reason: f.Reason}
	}
	if st := mk.Status; st != 0 && (st < 200 || st > 299) {
		kind := connector.ErrBadResponse
		switch st {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			kind = connector.ErrUnavailable
		}
		return &connector.Error{Source: source, Operation: req.Operation, Kind: kind, Detail: fmt.Sprintf("HTTP status %d without a SOAP fault", st)}
	}
	return nil
}
