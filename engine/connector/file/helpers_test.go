package file_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector/file/ftp"
	"github.com/openfsb/fsb/engine/connector/file/sftp"
	sdk "github.com/openfsb/fsb/sdk/connector"
)

// The test binary doubles as the connector process (see engine/plugin).
const serveVar = "FSB_FILE_TEST_SERVE=1"

func TestMain(m *testing.M) {
	if os.Getenv("FSB_FILE_TEST_SERVE") == "1" {
		sdk.Serve("file-test", "0", ftp.Driver{}, sftp.Driver{})
		return
	}
	os.Exit(m.Run())
}

// memStore is a Store in memory that counts what it is asked.
type memStore struct {
	mu      sync.Mutex
	files   map[string]memFile // by path
	lists   atomic.Int64
	fetches atomic.Int64
	delay   time.Duration
	lie     bool // announce 1 byte, send the file
}

type memFile struct {
	data string
	mod  time.Time
}

func newMem() *memStore { return &memStore{files: map[string]memFile{}} }

func (m *memStore) put(path, data string, mod time.Time) {
	m.mu.Lock()
	m.files[path] = memFile{data, mod}
	m.mu.Unlock()
}

func (m *memStore) List(_ context.Context, dir string) ([]sdk.FileInfo, error) {
	m.lists.Add(1)
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []sdk.FileInfo
	for p, f := range m.files {
		d, name := "", p
		if i := strings.LastIndexByte(p, '/'); i >= 0 {
			d, name = p[:i], p[i+1:]
		}
		if d == dir {
			out = append(out, sdk.FileInfo{Name: name, Size: int64(len(f.data)), ModTime: f.mod})
		}
	}
	return out, nil
}

func (m *memStore) Fetch(ctx context.Context, name string, maxBytes int64) (io.ReadCloser, sdk.FileInfo, error) {
	m.fetches.Add(1)
	if m.delay > 0 {
		select {
		case <-time.After(m.delay):
		case <-ctx.Done():
			return nil, sdk.FileInfo{}, ctx.Err()
		}
	}
	m.mu.Lock()
	f, ok := m.files[name]
	m.mu.Unlock()
	if !ok {
		return nil, sdk.FileInfo{}, fmt.Errorf("%w: %s", sdk.ErrNotFound, name)
	}
	info := sdk.FileInfo{Name: name[strings.LastIndexByte(name, '/')+1:], Size: int64(len(f.data)), ModTime: f.mod}
	if m.lie {
		info.Size = 1
	}
	if maxBytes > 0 && info.Size > maxBytes {
		return nil, info, fmt.Errorf("%w: %d bytes", sdk.ErrTooLarge, info.Size)
	}
	return io.NopCloser(strings.NewReader(f.data)), info, nil
}

func (m *memStore) Check(context.Context) error { return nil }

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }
