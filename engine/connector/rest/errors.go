package rest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/valyala/fasthttp"

	"github.com/openfsb/fsb/engine/connector"
)

// classify maps a transport failure onto a connector sentinel and a detail
// that is safe to show a consumer. The raw error (which names hosts, ports
// and addresses) only ever goes into connector.Error.Err.
func classify(err error) (kind error, detail string) {
	var (
		netErr   net.Error
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		alert    tls.AlertError
		record   tls.RecordHeaderError
		dnsErr   *net.DNSError
		opErr    *net.OpError
		dialErr  *fasthttp.ErrDialWithUpstream
	)
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		return connector.ErrTooLarge, ""
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout),
		errors.Is(err, fasthttp.ErrTLSHandshakeTimeout), errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return connector.ErrTimeout, ""
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return connector.ErrUnavailable, "connection pool exhausted"
	case errors.Is(err, syscall.ECONNREFUSED):
		return connector.ErrUnavailable, "connection refused"
	case errors.As(err, &unknown), errors.As(err, &hostname), errors.As(err, &invalid),
		errors.As(err, &verify), errors.As(err, &alert), errors.As(err, &record):
		return connector.ErrUnavailable, "tls handshake failed"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, fasthttp.ErrConnectionClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return connector.ErrUnavailable, "connection closed by the source"
	case errors.As(err, &dnsErr):
		return connector.ErrUnavailable, "host name not resolved"
	case errors.As(err, &opErr), errors.As(err, &dialErr), errors.As(err, &netErr):
		return connector.ErrUnavailable, "connection failed"
	default:
		// What is left comes from parsing the answer: a broken status line,
		// headers too large for the read buffer, a bad chunk.
		return connector.ErrBadResponse, ""
	}
}

// retryable reports whether a failure of this kind may succeed when tried
// again. A too-large or malformed answer would come back the same.
func retryable(kind error) bool { return connector.Retryable(kind) }

// staleConn reports a request lost on a kept-alive connection that the source
// had closed meanwhile: the connection was closed or reset before the first
// answer byte (fasthttp turns any error on that byte into io.EOF, and io.EOF
// into ErrConnectionClosed), or writing the request failed.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, fasthttp.ErrConnectionClosed) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// resendable reports whether a request lost on a stale connection may be sent
// again on a fresh one. An idempotent request always may. Any other only when
// writing it failed: the source then holds at most part of it and cannot have
// acted on it; once it is written, the source may have, even if the connection
// died before the answer.
func resendable(idempotent bool, err error) bool {
	if !staleConn(err) {
		return false
	}
	return idempotent || writeFailed(err)
}

// writeFailed reports a request whose write was refused by a connection the
// source had reset or closed. (A write timeout reaches us as ErrTimeout.)
func writeFailed(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) && opErr.Op == "write" &&
		(errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE))
}
