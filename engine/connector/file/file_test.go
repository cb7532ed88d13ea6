package file_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/file"
	"github.com/openfsb/fsb/plugins/csv"
	"github.com/openfsb/fsb/plugins/fixedwidth"
)

const people = "ssin;name;city\n85073003328;Jan;Gent\n90010100123;Marie;Liège\n85073003328;Jan bis;Brugge\n"

var csvCfg = []byte(`{"delimiter":";"}`)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newConn(t *testing.T, st file.Store, cache file.CacheConfig, tweak func(*file.Config)) (*file.Connector, *clock) {
	t.Helper()
	cfg := file.Config{
		Source: "people", Store: st, Cache: cache,
		Operations: map[string]file.Operation{
			"byssin":  {Kind: file.Lookup, Dir: "in", Pattern: "people-*.csv", Codec: csv.Native{}, CodecConfig: csvCfg, Keys: []string{"ssin"}},
			"bycity":  {Kind: file.Lookup, Dir: "in", File: "people-1.csv", Codec: csv.Native{}, CodecConfig: csvCfg, Keys: []string{"name", "city"}},
			"latest":  {Kind: file.Fetch, Dir: "in", Pattern: "people-*.csv", Codec: csv.Native{}, CodecConfig: csvCfg},
			"raw":     {Kind: file.Fetch, Dir: "in"},
			"list":    {Kind: file.List, Dir: "in", Pattern: "*.csv"},
			"payroll": {Kind: file.Lookup, File: "pay.txt", Codec: fixedwidth.Native{}, CodecConfig: []byte(`{"fields":[{"name":"ssin","start":1,"length":11},{"name":"amount","start":12,"length":6,"type":"number","decimals":2}]}`), Keys: []string{"ssin"}},
		},
	}
	if tweak != nil {
		tweak(&cfg)
	}
	c, err := file.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: t0}
	c.SetClock(clk.now)
	return c, clk
}

func call(t *testing.T, c *file.Connector, op string, query map[string]string) (int, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Call(ctx, &connector.Request{Operation: op, Query: query})
	if err != nil {
		return 0, "", err
	}
	if !json.Valid(resp.Body) {
		t.Fatalf("%s: invalid JSON %s", op, resp.Body)
	}
	return resp.Status, string(resp.Body), nil
}

func TestLookup(t *testing.T) {
	st := newMem()
	st.put("in/people-1.csv", people, t0.Add(-2*time.Hour))
	st.put("in/people-2.csv", "ssin;name;city\n11111111111;New;Namen\n", t0.Add(-time.Hour))
	st.put("in/other.txt", "x", t0)
	st.put("pay.txt", "85073003328001234\n90010100123000099\n", t0)
	c, _ := newConn(t, st, file.CacheConfig{}, nil)

	for _, tc := range []struct {
		op     string
		query  map[string]string
		status int
		want   string
	}{
		{"byssin", map[string]string{"ssin": "11111111111"}, 200, `{"file":{"name":"people-2.csv","size":37,"modTime":"2026-01-02T02:04:05Z"},"records":[{"ssin":"11111111111","name":"New","city":"Namen"}]}`},
		{"byssin", map[string]string{"ssin": "85073003328"}, 404, `"records":[]`},
		{"byssin", map[string]string{"ssin": "85073003328", "file": "people-1.csv"}, 200, `"records":[{"ssin":"85073003328","name":"Jan","city":"Gent"},{"ssin":"85073003328","name":"Jan bis","city":"Brugge"}]`},
		{"bycity", map[string]string{"name": "x", "city": "y"}, 404, `"records":[]`},
		{"payroll", map[string]string{"ssin": "90010100123"}, 200, `"records":[{"ssin":"90010100123","amount":0.99}]`},
		{"latest", nil, 200, `"records":[{"ssin":"11111111111","name":"New","city":"Namen"}]`},
		{"raw", map[string]string{"file": "other.txt"}, 200, `"content":"eA=="`},
		{"raw", map[string]string{"file": "gone.txt"}, 404, `{"records":[]}`},
		{"list", nil, 200, `{"files":[{"name":"people-1.csv","size":88,"modTime":"2026-01-02T01:04:05Z"},{"name":"people-2.csv","size":37,"modTime":"2026-01-02T02:04:05Z"}]}`},
	} {
		status, body, err := call(t, c, tc.op, tc.query)
		if tc.status == 400 {
			if !errors.Is(err, connector.ErrBadRequest) {
				t.Errorf("%s %v: %v, want a bad request", tc.op, tc.query, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s %v: %v", tc.op, tc.query, err)
			continue
		}
		if status != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s %v: %d %s\nwant %d with %s", tc.op, tc.query, status, body, tc.status, tc.want)
		}
	}
	// "bycity" needs both of its keys; a composite key matches both.
	status, body, err := call(t, c, "bycity", map[string]string{"name": "Marie", "city": "Liège"})
	if err != nil || status != 200 || !strings.Contains(body, `"ssin":"90010100123"`) {
		t.Errorf("composite key: %d %s %v", status, body, err)
	}
	if _, _, err := call(t, c, "bycity", map[string]string{"name": "Marie"}); !errors.Is(err, connector.ErrBadRequest) {
		t.Errorf("missing key: %v", err)
	}
}

func TestRequestNames(t *testing.T) {
	st := newMem()
	st.put("in/people-1.csv", people, t0)
	c, _ := newConn(t, st, file.CacheConfig{}, nil)
	for _, name := range []string{"../etc/passwd", "a/b.csv", "..", "x\r\nDELE y", "other.txt"} {
		_, _, err := call(t, c, "byssin", map[string]string{"ssin": "1", "file": name})
		var ce *connector.Error
		if !errors.Is(err, connector.ErrBadRequest) || !errors.As(err, &ce) || strings.Contains(err.Error(), "passwd") {
			t.Errorf("name %q: %v", name, err)
		}
	}
	if _, _, err := call(t, c, "nope", nil); !errors.Is(err, connector.ErrUnknownOp) {
		t.Errorf("unknown operation: %v", err)
	}
}

// TestCache: within the TTL a lookup asks the server nothing; after it, a
// listing shows the file unchanged and nothing is downloaded; a changed
// file is downloaded again.
func TestCache(t *testing.T) {
	st := newMem()
	st.put("in/people-1.csv", people, t0)
	c, clk := newConn(t, st, file.CacheConfig{TTL: time.Minute}, nil)
	q := map[string]string{"ssin": "90010100123"}
	for range 5 {
		if status, _, err := call(t, c, "bycity", map[string]string{"name": "Jan", "city": "Gent"}); err != nil || status != 200 {
			t.Fatal(status, err)
		}
	}
	if f, l := st.fetches.Load(), st.lists.Load(); f != 1 || l != 0 {
		t.Errorf("5 lookups of a fixed file: %d downloads, %d listings; want 1, 0", f, l)
	}
	clk.add(2 * time.Minute)
	call(t, c, "bycity", map[string]string{"name": "Jan", "city": "Gent"})
	if f, l := st.fetches.Load(), st.lists.Load(); f != 1 || l != 1 {
		t.Errorf("after the TTL, unchanged: %d downloads, %d listings; want 1, 1", f, l)
	}
	st.put("in/people-1.csv", people+"22222222222;Nieuw;Leuven\n", t0.Add(3*time.Minute))
	clk.add(2 * time.Minute)
	if status, body, _ := call(t, c, "bycity", map[string]string{"name": "Nieuw", "city": "Leuven"}); status != 200 {
		t.Errorf("changed file not reloaded: %d %s", status, body)
	}
	if f := st.fetches.Load(); f != 2 {
		t.Errorf("changed file: %d downloads, want 2", f)
	}
	// A newer file that matches the pattern wins once the listing is stale.
	call(t, c, "byssin", q)
	st.put("in/people-9.csv", "ssin;name;city\n90010100123;Marie 9;Aalst\n", t0.Add(10*time.Minute))
	if _, body, _ := call(t, c, "byssin", q); !strings.Contains(body, `"Marie"`) {
		t.Errorf("within the TTL the cached listing holds: %s", body)
	}
	clk.add(2 * time.Minute)
	if _, body, _ := call(t, c, "byssin", q); !strings.Contains(body, `"Marie 9"`) {
		t.Errorf("after the TTL the newest file wins: %s", body)
	}
	st.mu.Lock()
	delete(st.files, "in/people-1.csv")
	st.mu.Unlock()
	clk.add(2 * time.Minute)
	if status, _, _ := call(t, c, "bycity", map[string]string{"name": "Jan", "city": "Gent"}); status != 404 {
		t.Errorf("a deleted file: %d, want 404", status)
	}
	s := c.CacheStats()
	if s.Hits == 0 || s.Revalidated == 0 || s.Misses == 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestCacheCap(t *testing.T) {
	st := newMem()
	st.put("in/people-1.csv", people, t0)
	st.put("pay.txt", "85073003328001234\n", t0)
	// Room for about one decoded file.
	c, _ := newConn(t, st, file.CacheConfig{MaxBytes: 700}, nil)
	for range 3 {
		call(t, c, "bycity", map[string]string{"name": "Jan", "city": "Gent"})
		call(t, c, "payroll", map[string]string{"ssin": "85073003328"})
	}
	if f := st.fetches.Load(); f != 6 {
		t.Errorf("alternating two files in room for one: %d downloads, want 6", f)
	}
	if s := c.CacheStats(); s.Bytes > 700 || s.Evicted == 0 {
		t.Errorf("stats %+v", s)
	}
	// No cache at all.
	st.fetches.Store(0)
	c, _ = newConn(t, st, file.CacheConfig{TTL: -1}, nil)
	for range 3 {
		call(t, c, "payroll", map[string]string{"ssin": "85073003328"})
	}
	if f := st.fetches.Load(); f != 3 {
		t.Errorf("without a cache: %d downloads, want 3", f)
	}
}

func TestMaxFileSize(t *testing.T) {
	st := newMem()
	st.put("in/people-1.csv", people, t0)
	c, _ := newConn(t, st, file.CacheConfig{}, func(cfg *file.Config) { cfg.MaxFileSize = 50 })
	_, _, err := call(t, c, "bycity", map[string]string{"name": "Jan", "city": "Gent"})
	if !errors.Is(err, connector.ErrTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	// A server that announces a small size and sends more is cut off.
	st.lie = true
	_, _, err = call(t, c, "bycity", map[string]string{"name": "Jan", "city": "Gent"})
	if !errors.Is(err, connector.ErrTooLarge) {
		t.Errorf("grown past the limit: %v", err)
	}
}

// TestOneDownload: concurrent lookups of a cold file download it once.
func TestOneDownload(t *testing.T) {
	st := newMem()
	st.put("in/people-1.csv", people, t0)
	st.delay = 50 * time.Millisecond
	c, _ := newConn(t, st, file.CacheConfig{}, nil)
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if status, _, err := call(t, c, "bycity", map[string]string{"name": "Marie", "city": "Liège"}); err != nil || status != 200 {
				t.Error(status, err)
			}
		}()
	}
	wg.Wait()
	if f := st.fetches.Load(); f != 1 {
		t.Errorf("16 concurrent cold lookups: %d downloads, want 1", f)
	}
}

func TestErrors(t *testing.T) {
	st := newMem()
	st.put("in/people-1.csv", "ssin;name\n1\n", t0) // a record too short for the header
	c, _ := newConn(t, st, file.CacheConfig{}, nil)
	_, _, err := call(t, c, "bycity", map[string]string{"name": "a", "city": "b"})
	if !errors.Is(err, connector.ErrBadResponse) {
		t.Errorf("undecodable file: %v", err)
	}
	st.delay = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.Call(ctx, &connector.Request{Operation: "raw", Query: map[string]string{"file": "x"}}); !errors.Is(err, connector.ErrTimeout) {
		t.Errorf("deadline: %v", err)
	}
	for name, op := range map[string]file.Operation{
		"lookup without codec": {Kind: file.Lookup, Keys: []string{"a"}},
		"lookup without keys":  {Kind: file.Lookup, Codec: csv.Native{}},
		"bad pattern":          {Kind: file.List, Pattern: "["},
		"dir outside":          {Kind: file.List, Dir: "../x"},
		"file with a dir":      {Kind: file.Fetch, File: "a/b"},
		"unknown kind":         {Kind: "put"},
		"file as a key":        {Kind: file.Lookup, Codec: csv.Native{}, Keys: []string{"file"}},
	} {
		if _, err := file.New(file.Config{Source: "s", Store: st, Operations: map[string]file.Operation{"op": op}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestHammer: lookups, fetches and listings from many goroutines while the
// clock moves and files change (run with -race).
func TestHammer(t *testing.T) {
	st := newMem()
	st.put("in/people-1.csv", people, t0)
	st.put("pay.txt", "85073003328001234\n", t0)
	c, clk := newConn(t, st, file.CacheConfig{TTL: time.Second, MaxBytes: 2000}, nil)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				switch (g + i) % 5 {
				case 0:
					clk.add(300 * time.Millisecond)
				case 1:
					st.put("in/people-1.csv", people, t0.Add(time.Duration(i)*time.Second))
				}
				if _, _, err := call(t, c, "bycity", map[string]string{"name": "Jan", "city": "Gent"}); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := call(t, c, "payroll", map[string]string{"ssin": "85073003328"}); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := call(t, c, "list", nil); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
