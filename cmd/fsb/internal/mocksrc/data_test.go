package mocksrc

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// demoDir is testdata/demo at the module root.
var demoDir = filepath.Join("..", "..", "..", "..", "testdata", "demo")

// The checksums in this file are computed here, digit by digit, rather than
// with the package's own helpers, so that a bug there cannot hide bad data.

// mod97 returns digits mod 97 for a string of decimal digits.
func mod97(t *testing.T, digits string) int {
	t.Helper()
	r := 0
	for _, c := range digits {
		if c < '0' || c > '9' {
			t.Fatalf("%q: not all digits", digits)
		}
		r = (r*10 + int(c-'0')) % 97
	}
	return r
}

func twoDigits(s string) int { return int(s[0]-'0')*10 + int(s[1]-'0') }

// wantEnterpriseNumber fails unless n is a valid KBO/BCE number.
func wantEnterpriseNumber(t *testing.T, where, n string) {
	t.Helper()
	if len(n) != 10 || (n[0] != '0' && n[0] != '1') {
		t.Errorf("%s: %q is not 10 digits starting with 0 or 1", where, n)
		return
	}
	if got, want := twoDigits(n[8:]), 97-mod97(t, n[:8]); got != want {
		t.Errorf("%s: %s has check %02d, want %02d", where, n, got, want)
	}
}

// ssinCheckIn returns the expected SSIN check for one century.
func ssinCheckIn(t *testing.T, ssin string, born2000 bool) int {
	t.Helper()
	base := ssin[:9]
	if born2000 {
		base = "2" + base
	}
	return 97 - mod97(t, base)
}

// readRaw decodes a data file as plain JSON, independent of the package's types.
func readRaw(t *testing.T, name string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(demoDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}

func TestDemoDataChecksums(t *testing.T) {
	persons := readRaw(t, personsFile)
	for _, p := range persons {
		ssin, birth, gender := p["ssin"].(string), p["birthDate"].(string), p["gender"].(string)
		if len(ssin) != 11 || len(birth) != 10 {
			t.Errorf("person %q: malformed ssin or birthDate %q", ssin, birth)
			continue
		}
		if want := birth[2:4] + birth[5:7] + birth[8:10]; ssin[:6] != want {
			t.Errorf("person %s: first six digits should be %s (YYMMDD of %s)", ssin, want, birth)
		}
		born2000 := birth[:2] == "20"
		if got, want := twoDigits(ssin[9:]), ssinCheckIn(t, ssin, born2000); got != want {
			t.Errorf("person %s (born %s): check %02d, want %02d", ssin, birth, got, want)
		}
		// The serial is odd for men and even for women in the register.
		if odd := (ssin[8]-'0')%2 == 1; (gender == "M" && !odd) || (gender == "F" && odd) {
			t.Errorf("person %s: serial parity does not match gender %s", ssin, gender)
		}
	}

	for _, e := range readRaw(t, enterprisesFile) {
		n := e["enterpriseNumber"].(string)
		wantEnterpriseNumber(t, "enterprise", n)
		for _, d := range e["directors"].([]any) {
			ssin := d.(string)
			if len(ssin) != 11 {
				t.Errorf("enterprise %s: director %q is not 11 digits", n, ssin)
				continue
			}
			got := twoDigits(ssin[9:])
			if got != ssinCheckIn(t, ssin, false) && got != ssinCheckIn(t, ssin, true) {
				t.Errorf("enterprise %s: director %s has an invalid check", n, ssin)
			}
		}
	}

	for _, v := range readRaw(t, vatFile) {
		n, vat := v["enterpriseNumber"].(string), v["vatNumber"].(string)
		wantEnterpriseNumber(t, "vat record", n)
		if vat != "BE"+n {
			t.Errorf("vat record %s: vatNumber %q, want BE%s", n, vat, n)
		}
		wantEnterpriseNumber(t, "vatNumber", strings.TrimPrefix(vat, "BE"))
	}
}

// TestDemoDataStory checks the facts the demo and its README rely on.
func TestDemoDataStory(t *testing.T) {
	d, err := loadData(demoDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.enterprises) < 10 || len(d.persons) < 18 {
		t.Errorf("%d enterprises and %d persons: want about 12 and 20", len(d.enterprises), len(d.persons))
	}
	var before2000, from2000 int
	for _, p := range d.persons {
		if p.BirthDate < "2000" {
			before2000++
		} else {
			from2000++
		}
	}
	if before2000 == 0 || from2000 == 0 {
		t.Errorf("births: %d before 2000, %d from 2000: want both centuries", before2000, from2000)
	}

	var dangling []string
	for _, e := range d.enterprises {
		for _, s := range e.Directors {
			if _, ok := d.persons[s]; !ok {
				dangling = append(dangling, e.EnterpriseNumber+"/"+s)
			}
		}
	}
	if len(dangling) != 1 {
		t.Errorf("dangling directors %v: want exactly one", dangling)
	}
	if len(d.vat) == 0 || len(d.vat) == len(d.enterprises) {
		t.Errorf("%d VAT records for %d enterprises: want most, not all", len(d.vat), len(d.enterprises))
	}

	ex := d.enterprises[ExampleEnterprise]
	switch {
	case ex == nil:
		t.Fatalf("ExampleEnterprise %s is not in the data", ExampleEnterprise)
	case ex.Status != "active":
		t.Errorf("ExampleEnterprise status %q, want active", ex.Status)
	case len(ex.Directors) < 2:
		t.Errorf("ExampleEnterprise has %d directors, want 2 or more", len(ex.Directors))
	case d.vat[ExampleEnterprise] == nil || d.vat[ExampleEnterprise].Employer == nil:
		t.Errorf("ExampleEnterprise must be VAT registered as an employer")
	}
	for _, s := range ex.Directors {
		if _, ok := d.persons[s]; !ok {
			t.Errorf("ExampleEnterprise director %s is not in the person register", s)
		}
	}
	if _, ok := d.persons[ExampleSSIN]; !ok || !strings.Contains(strings.Join(ex.Directors, " "), ExampleSSIN) {
		t.Errorf("ExampleSSIN %s must be a person and a director of ExampleEnterprise", ExampleSSIN)
	}
	for _, n := range []string{SlowVATEnterprise, UnavailableVATEnterprise} {
		if d.enterprises[n] == nil || d.vat[n] == nil {
			t.Errorf("special VAT enterprise %s needs an enterprise and a VAT record", n)
		}
		if n == ExampleEnterprise {
			t.Errorf("special VAT enterprise %s must not be the example", n)
		}
	}

	readme, err := os.ReadFile(filepath.Join(demoDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	mentioned := []string{ExampleEnterprise, ExampleSSIN, SlowVATEnterprise, UnavailableVATEnterprise}
	for _, d := range dangling {
		mentioned = append(mentioned, strings.SplitN(d, "/", 2)...)
	}
	for _, n := range mentioned {
		if !strings.Contains(string(readme), n) {
			t.Errorf("testdata/demo/README.md does not mention %s", n)
		}
	}
}
