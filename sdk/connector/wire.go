package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The wire: a gRPC service written by hand (no protoc step), whose
// messages are protobuf's well-known BytesValue. A control message carries
// JSON; a file travels as a stream of raw chunks after a JSON header.
// RATIONALE in engine/plugin/README.md.

const serviceName = "openfsb.connector.v1.Connector"

// ChunkSize is the size of the file chunks a fetch streams.
const ChunkSize = 64 << 10

// MaxListEntries bounds one List answer.
const MaxListEntries = 50_000

const errDomain = "openfsb.connector"

type openReq struct {
	ID       string          `json:"id"`
	Protocol string          `json:"protocol"`
	Config   json.RawMessage `json:"config"`
}

type idReq struct {
	ID string `json:"id"`
}

type listReq struct {
	ID  string `json:"id"`
	Dir string `json:"dir"`
}

type listResp struct {
	Files []FileInfo `json:"files"`
}

type fetchReq struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	MaxBytes int64  `json:"maxBytes"`
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: serviceName,
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Info", Handler: unary(func(s *server, ctx context.Context, _ *idReq) (any, error) { return s.info, nil })},
		{MethodName: "Open", Handler: unary((*server).open)},
		{MethodName: "Close", Handler: unary((*server).close)},
		{MethodName: "Check", Handler: unary((*server).check)},
		{MethodName: "List", Handler: unary((*server).list)},
	},
	Streams: []grpc.StreamDesc{
		{StreamName: "Fetch", Handler: fetchHandler, ServerStreams: true},
	},
	Metadata: "sdk/connector/wire.go",
}

func method(name string) string { return "/" + serviceName + "/" + name }

// unary adapts a JSON-in, JSON-out method to a gRPC handler.
func unary[Req any](fn func(*server, context.Context, *Req) (any, error)) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
		in := new(wrapperspb.BytesValue)
		if err := dec(in); err != nil {
			return nil, err
		}
		req := new(Req)
		if len(in.Value) > 0 {
			if err := json.Unmarshal(in.Value, req); err != nil {
				return nil, status.Errorf(codes.InvalidArgument, "decode request: %v", err)
			}
		}
		out, err := fn(srv.(*server), ctx, req)
		if err != nil {
			return nil, toStatus(err)
		}
		b, err := json.Marshal(out)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "encode answer: %v", err)
		}
		return wrapperspb.Bytes(b), nil
	}
}

// server is the plugin side: it holds the drivers and the open stores.
type server struct {
	info    Info
	drivers map[string]Driver
	mu      sync.Mutex
	stores  map[string]Store
}

func newServer(name, version string, drivers []Driver) *server {
	s := &server{drivers: map[string]Driver{}, stores: map[string]Store{}}
	s.info = Info{Name: name, Version: version, PID: os.Getpid()}
	for _, d := range drivers {
		s.drivers[d.Protocol()] = d
		s.info.Protocols = append(s.info.Protocols, d.Protocol())
	}
	return s
}

func (s *server) store(id string) (Store, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stores[id]
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownEndpoint, id)
	}
	return st, nil
}

func (s *server) open(ctx context.Context, r *openReq) (any, error) {
	d, ok := s.drivers[r.Protocol]
	if !ok {
		return nil, fmt.Errorf("%w: this connector does not speak %q (it speaks %v)", ErrConfig, r.Protocol, s.info.Protocols)
	}
	st, err := d.Open(ctx, r.Config)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	old := s.stores[r.ID]
	s.stores[r.ID] = st
	s.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return struct{}{}, nil
}

func (s *server) close(_ context.Context, r *idReq) (any, error) {
	s.mu.Lock()
	st := s.stores[r.ID]
	delete(s.stores, r.ID)
	s.mu.Unlock()
	if st != nil {
		return struct{}{}, st.Close()
	}
	return struct{}{}, nil
}

func (s *server) check(ctx context.Context, r *idReq) (any, error) {
	st, err := s.store(r.ID)
	if err != nil {
		return nil, err
	}
	return struct{}{}, st.Check(ctx)
}

func (s *server) list(ctx context.Context, r *listReq) (any, error) {
	st, err := s.store(r.ID)
	if err != nil {
		return nil, err
	}
	files, err := st.List(ctx, r.Dir)
	if err != nil {
		return nil, err
	}
	if len(files) > MaxListEntries {
		return nil, fmt.Errorf("%w: the directory holds more than %d files", ErrTooLarge, MaxListEntries)
	}
	return listResp{Files: files}, nil
}

func fetchHandler(srv any, stream grpc.ServerStream) error {
	in := new(wrapperspb.BytesValue)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	var r fetchReq
	if err := json.Unmarshal(in.Value, &r); err != nil {
		return status.Errorf(codes.InvalidArgument, "decode request: %v", err)
	}
	if err := srv.(*server).fetch(stream, &r); err != nil {
		return toStatus(err)
	}
	return nil
}

// fetch streams the file: a JSON FileInfo, then chunks. A file announced
// larger than MaxBytes is refused before a byte is read; one that grows
// past it while streaming fails the stream.
func (s *server) fetch(stream grpc.ServerStream, r *fetchReq) error {
	st, err := s.store(r.ID)
	if err != nil {
		return err
	}
	rc, info, err := st.Open(stream.Context(), r.Name)
	if err != nil {
		return err
	}
	defer rc.Close()
	if r.MaxBytes > 0 && info.Size > r.MaxBytes {
		return fmt.Errorf("%w: %d bytes, the maximum is %d", ErrTooLarge, info.Size, r.MaxBytes)
	}
	head, _ := json.Marshal(info)
	if err := stream.SendMsg(wrapperspb.Bytes(head)); err != nil {
		return err
	}
	buf := make([]byte, ChunkSize)
	var total int64
	for {
		n, err := io.ReadFull(rc, buf)
		if n > 0 {
			total += int64(n)
			if r.MaxBytes > 0 && total > r.MaxBytes {
				return fmt.Errorf("%w: the file grew past %d bytes while read", ErrTooLarge, r.MaxBytes)
			}
			if err := stream.SendMsg(wrapperspb.Bytes(buf[:n])); err != nil {
				return err
			}
		}
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			return nil
		case err != nil:
			return err
		}
	}
}

var kindCodes = map[string]codes.Code{
	"NOT_FOUND":        codes.NotFound,
	"OUTSIDE_BASE":     codes.InvalidArgument,
	"TOO_LARGE":        codes.ResourceExhausted,
	"PERMISSION":       codes.PermissionDenied,
	"UNAVAILABLE":      codes.Unavailable,
	"AUTH":             codes.Unauthenticated,
	"HOST_KEY":         codes.Unauthenticated,
	"CONFIG":           codes.InvalidArgument,
	"UNKNOWN_ENDPOINT": codes.FailedPrecondition,
	"DEADLINE":         codes.DeadlineExceeded,
	"CANCELED":         codes.Canceled,
}

// toStatus turns a store's error into a status whose ErrorInfo names the
// sentinel it wraps, so the other side can tell a store's "unreachable"
// from a dead process's.
func toStatus(err error) error {
	if _, ok := status.FromError(err); ok && !isKnown(err) {
		return err
	}
	reason, code := "INTERNAL", codes.Unknown
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			reason, code = k.reason, kindCodes[k.reason]
			break
		}
	}
	st, derr := status.New(code, err.Error()).WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: errDomain})
	if derr != nil {
		return status.Error(code, err.Error())
	}
	return st.Err()
}

func isKnown(err error) bool {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return true
		}
	}
	return false
}

// RemoteError is an error a store returned in the connector process.
type RemoteError struct {
	Kind error // one of the sentinels, or nil for another failure
	Msg  string
}

func (e *RemoteError) Error() string { return e.Msg }

func (e *RemoteError) Unwrap() error { return e.Kind }

// fromStatus turns what a call returned back into an error: a store's
// error keeps its sentinel; a transport failure (the process died, the
// connection broke) becomes ErrPluginDown, and the caller's own context
// ending stays that.
func fromStatus(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: %v", ErrPluginDown, err)
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errDomain {
			re := &RemoteError{Msg: st.Message()}
			for _, k := range kinds {
				if k.reason == info.Reason {
					re.Kind = k.err
				}
			}
			return re
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("%w: %s", ErrPluginDown, st.Message())
}
