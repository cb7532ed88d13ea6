package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Client is the host's side of the wire to one connector process. The
// engine's supervisor (engine/plugin) owns it; its methods are safe for
// concurrent use and bounded by their contexts.
type Client struct {
	conn *grpc.ClientConn
}

// NewClient wraps a connection to a connector process.
func NewClient(conn *grpc.ClientConn) *Client { return &Client{conn: conn} }

func (c *Client) call(ctx context.Context, name string, req, resp any) error {
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	out := new(wrapperspb.BytesValue)
	if err := c.conn.Invoke(ctx, method(name), wrapperspb.Bytes(b), out); err != nil {
		return fromStatus(ctx, err)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(out.Value, resp); err != nil {
		return fmt.Errorf("connector answer to %s: %w", name, err)
	}
	return nil
}

// Info describes the process.
func (c *Client) Info(ctx context.Context) (Info, error) {
	var info Info
	err := c.call(ctx, "Info", idReq{}, &info)
	return info, err
}

// Open configures the endpoint id with a driver's configuration (secrets
// included: the channel is mutually authenticated TLS). Opening an id
// again replaces it.
func (c *Client) Open(ctx context.Context, id, protocol string, config []byte) error {
	return c.call(ctx, "Open", openReq{ID: id, Protocol: protocol, Config: config}, nil)
}

// Close forgets the endpoint id.
func (c *Client) Close(ctx context.Context, id string) error {
	return c.call(ctx, "Close", idReq{ID: id}, nil)
}

// Check probes the endpoint's server.
func (c *Client) Check(ctx context.Context, id string) error {
	return c.call(ctx, "Check", idReq{ID: id}, nil)
}

// List lists the regular files of dir.
func (c *Client) List(ctx context.Context, id, dir string) ([]FileInfo, error) {
	var r listResp
	err := c.call(ctx, "List", listReq{ID: id, Dir: dir}, &r)
	return r.Files, err
}

// Fetch opens the file name for streaming. With maxBytes > 0 a larger file
// is refused before any of it is sent (ErrTooLarge). Close the reader;
// cancelling ctx ends the stream too.
func (c *Client) Fetch(ctx context.Context, id, name string, maxBytes int64) (io.ReadCloser, FileInfo, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.conn.NewStream(ctx, &serviceDesc.Streams[0], method("Fetch"))
	if err != nil {
		err = fromStatus(ctx, err)
		cancel()
		return nil, FileInfo{}, err
	}
	b, _ := json.Marshal(fetchReq{ID: id, Name: name, MaxBytes: maxBytes})
	if err := stream.SendMsg(wrapperspb.Bytes(b)); err != nil {
		err = fromStatus(ctx, err)
		cancel()
		return nil, FileInfo{}, err
	}
	if err := stream.CloseSend(); err != nil {
		err = fromStatus(ctx, err)
		cancel()
		return nil, FileInfo{}, err
	}
	head := new(wrapperspb.BytesValue)
	if err := stream.RecvMsg(head); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		err = fromStatus(ctx, err)
		cancel()
		return nil, FileInfo{}, err
	}
	var info FileInfo
	if err := json.Unmarshal(head.Value, &info); err != nil {
		cancel()
		return nil, FileInfo{}, fmt.Errorf("connector fetch header: %w", err)
	}
	return &fetchReader{ctx: ctx, stream: stream, cancel: cancel}, info, nil
}

// fetchReader reads a Fetch stream's chunks.
type fetchReader struct {
	ctx    context.Context
	stream grpc.ClientStream
	cancel context.CancelFunc
	buf    []byte
	err    error
}

func (r *fetchReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		msg := new(wrapperspb.BytesValue)
		if err := r.stream.RecvMsg(msg); err != nil {
			if err == io.EOF {
				r.err = io.EOF
			} else {
				r.err = fromStatus(r.ctx, err)
			}
			continue
		}
		r.buf = msg.Value
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *fetchReader) Close() error {
	r.cancel()
	return nil
}
