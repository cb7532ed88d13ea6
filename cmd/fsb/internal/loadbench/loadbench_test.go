package loadbench

import (
	"bytes"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestQuickRun runs every candidate but nginx for a short while: each must
// validate, serve requests and fail none.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers and puts load on them")
	}
	only := []string{Direct, FiberMerge, FSBPassthrough, FSBThree, FSBThreeAudit}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := Run(ctx, Config{Conns: 4, Duration: 300 * time.Millisecond, Warmup: 100 * time.Millisecond, Only: only, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if !res.InProcess {
		t.Error("without a ServeCommand the result does not say the Go candidates ran in this process")
	}
	if len(res.Candidates) != len(only) {
		t.Fatalf("%d candidates, want %d", len(res.Candidates), len(only))
	}
	for _, c := range res.Candidates {
		if !c.Measured() {
			t.Errorf("%s: not measured (%s)", c.Name, c.Skipped)
			continue
		}
		m := c.Median
		if m.Requests == 0 || m.RPS <= 0 {
			t.Errorf("%s: %d requests, %.0f rps", c.Name, m.Requests, m.RPS)
		}
		if c.Failed() {
			t.Errorf("%s: %d errors, %d non-2xx: %s", c.Name, c.Errors, c.Non2xx, m.FirstError)
		}
		if m.P50 <= 0 || m.P99 < m.P50 || m.Max < m.P99 {
			t.Errorf("%s: p50 %v p99 %v max %v", c.Name, m.P50, m.P99, m.Max)
		}
	}
	if res.Failed() {
		t.Error("result reports a failure")
	}
	for _, x := range res.Ratios {
		switch x.Name {
		case "fsb-three / fiber-merge rps", "fsb-three / fiber-merge p99":
			if x.Status == StatusNA || x.Value <= 0 {
				t.Errorf("ratio %s not computed", x.Name)
			}
		case "fsb-three-audit / fsb-three rps", "fsb-three-audit / fsb-three p99":
			if x.Value <= 0 {
				t.Errorf("ratio %s not computed", x.Name)
			}
		case "fsb-passthrough / nginx rps":
			if x.Status != StatusNA {
				t.Errorf("ratio %s: status %s without nginx", x.Name, x.Status)
			}
		}
	}

	var table bytes.Buffer
	res.WriteTable(&table)
	for _, want := range []string{"fsb-three", "fiber-merge", "targets:", "relative to direct"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := res.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var decoded map[string]any
	if err := json.Unmarshal(js.Bytes(), &decoded); err != nil {
		t.Fatalf("-json output is not JSON: %v", err)
	}
	t.Logf("\n%s", table.String())
}

// TestChecks: the validation of answers refuses what is not the backends'
// items.
func TestChecks(t *testing.T) {
	var want [3]any
	for i := range want {
		if err := json.Unmarshal(BackendBody(i, "0403170701"), &want[i]); err != nil {
			t.Fatal(err)
		}
	}
	a, b, c := BackendBody(0, "0403170701"), BackendBody(1, "0403170701"), BackendBody(2, "0403170701")
	merged := []byte(`{"a":` + string(a) + `,"b":` + string(b) + `,"c":` + string(c) + `}`)
	if err := checkEqual(a, want[0]); err != nil {
		t.Errorf("backend a's body refused: %v", err)
	}
	if err := checkEqual(b, want[0]); err == nil {
		t.Error("backend b's body accepted as a's")
	}
	if err := checkEqual([]byte("not json"), want[0]); err == nil {
		t.Error("non-JSON accepted")
	}
	if err := checkMerged(merged, want); err != nil {
		t.Errorf("merged body refused: %v", err)
	}
	partial := []byte(`{"a":` + string(a) + `,"b":` + string(b) + `}`)
	if err := checkMerged(partial, want); err == nil || !strings.Contains(err.Error(), `"c"`) {
		t.Errorf("merged body without c: %v", err)
	}
}

func TestBackendBodies(t *testing.T) {
	for i := range 3 {
		b := BackendBody(i, "0403170701")
		if !json.Valid(b) {
			t.Errorf("backend %c: body is not JSON", 'a'+i)
		}
		if len(b) < 900 || len(b) > 1300 {
			t.Errorf("backend %c: body is %d bytes, want ~1 KiB", 'a'+i, len(b))
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Conns: -1},
		{Duration: time.Nanosecond},
		{Rounds: 100},
		{Only: []string{"apache"}},
		{ID: "../x"},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
	if _, err := ParseOnly("direct, fsb-three,direct"); err != nil {
		t.Error(err)
	}
	if _, err := ParseOnly("direct,nope"); err == nil {
		t.Error("unknown candidate accepted")
	}
}

// TestRequireNginx: with nginx required but absent, the run fails.
func TestRequireNginx(t *testing.T) {
	if FindNginx() != "" {
		t.Skip("nginx is installed")
	}
	_, err := Run(context.Background(), Config{Conns: 1, Duration: 50 * time.Millisecond, Only: []string{Nginx}, RequireNginx: true})
	if err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("err = %v", err)
	}
	res, err := Run(context.Background(), Config{Conns: 1, Duration: 50 * time.Millisecond, Only: []string{Nginx}})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Candidate(Nginx); c == nil || c.Skipped != "not installed" {
		t.Errorf("nginx candidate: %+v", c)
	}
}

// TestNginx runs the nginx candidate briefly when nginx is installed.
func TestNginx(t *testing.T) {
	if testing.Short() || FindNginx() == "" {
		t.Skip("needs nginx")
	}
	res, err := Run(context.Background(), Config{Conns: 4, Duration: 200 * time.Millisecond, Warmup: 50 * time.Millisecond, Only: []string{Direct, Nginx}})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Candidate(Nginx)
	if !c.Measured() || c.Median.Requests == 0 || c.Failed() {
		t.Fatalf("nginx: %+v", c)
	}
}

// TestRoundRatios: the per-round ratios pair round i of each candidate
// (they take turns), are printed under their target with their spread,
// and are in the JSON; rounds that do not pair give none.
func TestRoundRatios(t *testing.T) {
	rounds := func(rps ...float64) []Stats {
		var out []Stats
		for _, v := range rps {
			out = append(out, Stats{RPS: v, Requests: int64(v), P50: time.Millisecond, P99: 2 * time.Millisecond, Max: 3 * time.Millisecond})
		}
		return out
	}
	r := &Result{Rounds: 3, Candidates: []*CandidateResult{
		{Name: FSBThree, Rounds: rounds(100, 200, 400)},
		{Name: FSBThreeAudit, Rounds: rounds(80, 100, 360)},
	}}
	for _, c := range r.Candidates {
		c.Median = medianRound(c.Rounds)
	}
	r.Ratios = ratios(r)
	if got := r.RoundRatios(FSBThreeAudit, FSBThree); !slices.Equal(got, []float64{0.8, 0.5, 0.9}) {
		t.Fatalf("RoundRatios %v, want [0.8 0.5 0.9]", got)
	}
	var table bytes.Buffer
	r.WriteTable(&table)
	if want := "per round 0.80 0.50 0.90 (sorted: 0.50–0.90, median 0.80)"; !strings.Contains(table.String(), want) {
		t.Errorf("table lacks %q:\n%s", want, table.String())
	}
	var js bytes.Buffer
	if err := r.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Ratios []struct {
			Name     string    `json:"name"`
			PerRound []float64 `json:"perRound"`
		} `json:"ratios"`
	}
	if err := json.Unmarshal(js.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, x := range out.Ratios {
		if x.Name == "fsb-three-audit / fsb-three rps" {
			found = slices.Equal(x.PerRound, []float64{0.8, 0.5, 0.9})
		}
	}
	if !found {
		t.Errorf("the JSON's audit ratio lacks its per-round ratios:\n%s", js.String())
	}
	r.Candidates[1].Rounds = r.Candidates[1].Rounds[:2]
	if got := r.RoundRatios(FSBThreeAudit, FSBThree); got != nil {
		t.Errorf("rounds that do not pair: %v, want none", got)
	}
}
