package file_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openfsb/fsb/engine/connector"
	"github.com/openfsb/fsb/engine/connector/file"
	"github.com/openfsb/fsb/engine/connector/file/sftp"
	"github.com/openfsb/fsb/plugins/csv"
)

// benchCSV is 5,000 person records, about 190 KiB.
func benchCSV() string {
	var b strings.Builder
	b.WriteString("ssin;name;city\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "%011d;Person %d;City %d\n", 85073003328+i, i, i%300)
	}
	return b.String()
}

// BenchmarkLookup: one record looked up in a 190 KiB CSV on an SFTP
// server, with the cache warm, and without a cache (every call downloads
// and decodes the file), the transport in this process ("local") or in
// the supervised connector process ("process").
func BenchmarkLookup(b *testing.B) {
	dir := b.TempDir()
	os.MkdirAll(filepath.Join(dir, "in"), 0o755)
	os.WriteFile(filepath.Join(dir, "in", "people-1.csv"), []byte(benchCSV()), 0o644)
	srv := sftpServer(b, dir)
	sc := sftp.Config{Host: "127.0.0.1", Port: srv.Port(), User: "fsb", Password: "pw", HostKeys: []string{srv.HostKey}}
	raw, _ := json.Marshal(sc)
	local, err := sftp.New(sc)
	if err != nil {
		b.Fatal(err)
	}
	defer local.Close()
	stores := map[string]file.Store{"local": file.Local(local), "process": supervisor(b).Endpoint("sftp", raw)}
	for _, where := range []string{"local", "process"} {
		for _, mode := range []struct {
			name  string
			cache file.CacheConfig
		}{{"warm", file.CacheConfig{TTL: time.Hour}}, {"download", file.CacheConfig{TTL: -1}}} {
			b.Run(where+"/"+mode.name, func(b *testing.B) {
				c, err := file.New(file.Config{Source: "people", Store: stores[where], Cache: mode.cache, Operations: map[string]file.Operation{
					"byssin": {Kind: file.Lookup, Dir: "in", File: "people-1.csv", Codec: csv.Native{}, CodecConfig: csvCfg, Keys: []string{"ssin"}},
				}})
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				i := 0
				for b.Loop() {
					i++
					resp, err := c.Call(ctx, &connector.Request{Operation: "byssin", Query: map[string]string{"ssin": fmt.Sprintf("%011d", 85073003328+i%5000)}})
					if err != nil || resp.Status != 200 {
						b.Fatal(resp, err)
					}
				}
			})
		}
	}
}
