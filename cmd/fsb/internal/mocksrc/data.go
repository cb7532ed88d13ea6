package mocksrc

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The record shapes below are what the sources serve, field for field, and
// what the data files hold. Absent optional values are omitted, never null.

type address struct {
	Street       string `json:"street"`
	HouseNumber  string `json:"houseNumber"`
	PostalCode   string `json:"postalCode"`
	Municipality string `json:"municipality"`
	Country      string `json:"country"`
}

type activity struct {
	NaceCode    string `json:"naceCode"`
	Description string `json:"description"`
}

type enterprise struct {
	EnterpriseNumber string     `json:"enterpriseNumber"`
	Name             string     `json:"name"`
	LegalForm        string     `json:"legalForm"`
	Status           string     `json:"status"`
	StartDate        string     `json:"startDate"`
	Address          address    `json:"address"`
	Activities       []activity `json:"activities"`
	Directors        []string   `json:"directors"`
}

// enterpriseSummary is one item of a name search.
type enterpriseSummary struct {
	EnterpriseNumber string `json:"enterpriseNumber"`
	Name             string `json:"name"`
	Status           string `json:"status"`
}

type person struct {
	SSIN        string  `json:"ssin"`
	GivenName   string  `json:"givenName"`
	FamilyName  string  `json:"familyName"`
	BirthDate   string  `json:"birthDate"`
	Gender      string  `json:"gender"`
	Address     address `json:"address"`
	Deceased    bool    `json:"deceased"`
	DeathDate   string  `json:"deathDate,omitempty"`
	Nationality string  `json:"nationality"`
}

type vatRecord struct {
	EnterpriseNumber string    `json:"enterpriseNumber"`
	VATNumber        string    `json:"vatNumber"`
	VATActive        bool      `json:"vatActive"`
	RegisteredSince  string    `json:"registeredSince"`
	Employer         *employer `json:"employer,omitempty"`
}

type employer struct {
	NSSONumber     string `json:"nssoNumber"`
	Employees      int    `json:"employees"`
	JointCommittee string `json:"jointCommittee"`
}

// registers is the loaded, validated data behind the three sources. It is
// read-only once loaded, so handlers share it without locks.
type registers struct {
	enterprises map[string]*enterprise
	byName      []*enterprise // sorted by name, for searches
	lowerNames  []string      // strings.ToLower of byName[i].Name
	persons     map[string]*person
	vat         map[string]*vatRecord
}

// Data file names inside the data directory.
const (
	enterprisesFile = "enterprises.json"
	personsFile     = "persons.json"
	vatFile         = "vat.json"
)

// loadData reads and validates the three data files. Invalid data is an
// error rather than a surprise at demo time.
func loadData(dir string) (*registers, error) {
	var (
		ents []*enterprise
		pers []*person
		vats []*vatRecord
	)
	for _, f := range []struct {
		name string
		into any
	}{{enterprisesFile, &ents}, {personsFile, &pers}, {vatFile, &vats}} {
		if err := readJSON(filepath.Join(dir, f.name), f.into); err != nil {
			return nil, err
		}
	}

	r := &registers{
		enterprises: make(map[string]*enterprise, len(ents)),
		persons:     make(map[string]*person, len(pers)),
		vat:         make(map[string]*vatRecord, len(vats)),
	}
	for i, p := range pers {
		if err := checkPerson(p); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", personsFile, i, err)
		}
		if _, dup := r.persons[p.SSIN]; dup {
			return nil, fmt.Errorf("%s: entry %d: duplicate ssin", personsFile, i)
		}
		r.persons[p.SSIN] = p
	}
	for i, e := range ents {
		if err := checkEnterprise(e); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", enterprisesFile, i, err)
		}
		if _, dup := r.enterprises[e.EnterpriseNumber]; dup {
			return nil, fmt.Errorf("%s: entry %d: duplicate enterprise number %s", enterprisesFile, i, e.EnterpriseNumber)
		}
		if e.Activities == nil {
			e.Activities = []activity{}
		}
		if e.Directors == nil {
			e.Directors = []string{}
		}
		r.enterprises[e.EnterpriseNumber] = e
		r.byName = append(r.byName, e)
	}
	for i, v := range vats {
		if err := checkVAT(v); err != nil {
			return nil, fmt.Errorf("%s: entry %d: %w", vatFile, i, err)
		}
		if _, ok := r.enterprises[v.EnterpriseNumber]; !ok {
			return nil, fmt.Errorf("%s: entry %d: enterprise %s is not in %s", vatFile, i, v.EnterpriseNumber, enterprisesFile)
		}
		if _, dup := r.vat[v.EnterpriseNumber]; dup {
			return nil, fmt.Errorf("%s: entry %d: duplicate enterprise number %s", vatFile, i, v.EnterpriseNumber)
		}
		r.vat[v.EnterpriseNumber] = v
	}

	slices.SortFunc(r.byName, func(a, b *enterprise) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.EnterpriseNumber, b.EnterpriseNumber))
	})
	for _, e := range r.byName {
		r.lowerNames = append(r.lowerNames, strings.ToLower(e.Name))
	}
	return r, nil
}

// readJSON decodes one data file strictly: unknown fields and trailing data
// are errors, so a typo in hand-edited data does not go unnoticed.
func readJSON(path string, into any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read data: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(path), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: trailing data after the top-level array", filepath.Base(path))
	}
	return nil
}

func checkPerson(p *person) error {
	if !validSSIN(p.SSIN) {
		return fmt.Errorf("invalid ssin %q", p.SSIN)
	}
	birth, err := time.Parse(time.DateOnly, p.BirthDate)
	if err != nil {
		return fmt.Errorf("ssin %s: birthDate: %w", p.SSIN, err)
	}
	if p.SSIN[:6] != birth.Format("060102") || ssinCheck(p.SSIN[:9], birth.Year() >= 2000) != p.SSIN[9:] {
		return fmt.Errorf("ssin %s does not match birthDate %s", p.SSIN, p.BirthDate)
	}
	switch {
	case p.GivenName == "" || p.FamilyName == "":
		return fmt.Errorf("ssin %s: givenName and familyName are required", p.SSIN)
	case p.Gender != "F" && p.Gender != "M" && p.Gender != "X":
		return fmt.Errorf("ssin %s: gender %q is not F, M or X", p.SSIN, p.Gender)
	case len(p.Nationality) != 2:
		return fmt.Errorf("ssin %s: nationality %q is not a two-letter code", p.SSIN, p.Nationality)
	case p.DeathDate != "" && !p.Deceased:
		return fmt.Errorf("ssin %s: deathDate set but not deceased", p.SSIN)
	}
	if p.DeathDate != "" {
		if _, err := time.Parse(time.DateOnly, p.DeathDate); err != nil {
			return fmt.Errorf("ssin %s: deathDate: %w", p.SSIN, err)
		}
	}
	return checkAddress(p.Address)
}

func checkEnterprise(e *enterprise) error {
	if !validEnterpriseNumber(e.EnterpriseNumber) {
		return fmt.Errorf("invalid enterprise number %q", e.EnterpriseNumber)
	}
	switch {
	case e.Name == "" || e.LegalForm == "":
		return fmt.Errorf("enterprise %s: name and legalForm are required", e.EnterpriseNumber)
	case e.Status != "active" && e.Status != "stopped":
		return fmt.Errorf("enterprise %s: status %q is not active or stopped", e.EnterpriseNumber, e.Status)
	case len(e.Directors) > 3:
		return fmt.Errorf("enterprise %s: more than 3 directors", e.EnterpriseNumber)
	}
	if _, err := time.Parse(time.DateOnly, e.StartDate); err != nil {
		return fmt.Errorf("enterprise %s: startDate: %w", e.EnterpriseNumber, err)
	}
	for _, d := range e.Directors {
		// A director may be missing from the person register (the demo
		// has one on purpose), but never a malformed number.
		if !validSSIN(d) {
			return fmt.Errorf("enterprise %s: invalid director ssin %q", e.EnterpriseNumber, d)
		}
	}
	return checkAddress(e.Address)
}

func checkVAT(v *vatRecord) error {
	if !validEnterpriseNumber(v.EnterpriseNumber) {
		return fmt.Errorf("invalid enterprise number %q", v.EnterpriseNumber)
	}
	if v.VATNumber != "BE"+v.EnterpriseNumber {
		return fmt.Errorf("enterprise %s: vatNumber %q is not BE followed by the enterprise number", v.EnterpriseNumber, v.VATNumber)
	}
	if _, err := time.Parse(time.DateOnly, v.RegisteredSince); err != nil {
		return fmt.Errorf("enterprise %s: registeredSince: %w", v.EnterpriseNumber, err)
	}
	if emp := v.Employer; emp != nil && (emp.Employees < 0 || !allDigits(emp.NSSONumber) || emp.JointCommittee == "") {
		return fmt.Errorf("enterprise %s: employer needs a numeric nssoNumber, employees >= 0 and a jointCommittee", v.EnterpriseNumber)
	}
	return nil
}

func checkAddress(a address) error {
	if a.Street == "" || a.Municipality == "" || len(a.PostalCode) != 4 || !allDigits(a.PostalCode) || len(a.Country) != 2 {
		return fmt.Errorf("incomplete address %+v", a)
	}
	return nil
}

// validEnterpriseNumber reports whether n is a KBO/BCE enterprise number:
// ten digits, starting with 0 or 1, whose last two digits are
// 97 - (first eight digits mod 97).
func validEnterpriseNumber(n string) bool {
	if len(n) != 10 || !allDigits(n) || (n[0] != '0' && n[0] != '1') {
		return false
	}
	return mod97Check(n[:8]) == n[8:]
}

// parseEnterpriseNumber accepts an enterprise number as ten digits or in its
// printed form 0123.456.789 and returns the ten digits.
func parseEnterpriseNumber(s string) (string, bool) {
	if len(s) == 12 && s[4] == '.' && s[8] == '.' {
		s = s[:4] + s[5:8] + s[9:]
	}
	return s, validEnterpriseNumber(s)
}

// validSSIN reports whether s is an SSIN (national register number) with a
// valid check for a birth in either century. The birth date part is not
// checked: real registers hold numbers with an unknown day or month.
func validSSIN(s string) bool {
	if len(s) != 11 || !allDigits(s) {
		return false
	}
	return ssinCheck(s[:9], false) == s[9:] || ssinCheck(s[:9], true) == s[9:]
}

// ssinCheck returns the two check digits of an SSIN's first nine digits:
// 97 - (n mod 97), where n has a 2 in front for births from 2000 on.
func ssinCheck(first9 string, born2000OrLater bool) string {
	if born2000OrLater {
		first9 = "2" + first9
	}
	return mod97Check(first9)
}

// mod97Check returns 97 - (digits mod 97) as two digits (so "97" when the
// remainder is 0). digits must be all digits and fit in a uint64.
func mod97Check(digits string) string {
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%02d", 97-n%97)
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
