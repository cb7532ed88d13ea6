package expr

import (
	"fmt"
	"math/big"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	exprlang "github.com/expr-lang/expr"
)

// The helpers below compute check digits with math/big on the decimal string,
// independently of the int arithmetic in belgian.go.

// mod97 returns the decimal number s modulo 97.
func mod97(t testing.TB, s string) int64 {
	t.Helper()
	n, ok := new(big.Int).SetString(s, 10)
	if !ok {
		t.Fatalf("mod97(%q): not a decimal number", s)
	}
	return new(big.Int).Mod(n, big.NewInt(97)).Int64()
}

// makeSSIN builds a valid SSIN from a YYMMDD date part (month may carry the BIS
// offset) and a 3-digit sequence; born2000 selects the post-2000 check variant.
func makeSSIN(t testing.TB, yymmdd, seq string, born2000 bool) string {
	t.Helper()
	base := yymmdd + seq
	if born2000 {
		return base + fmt.Sprintf("%02d", 97-mod97(t, "2"+base))
	}
	return base + fmt.Sprintf("%02d", 97-mod97(t, base))
}

// makeEnterpriseNumber builds a valid enterprise number from its first 8 digits.
func makeEnterpriseNumber(t testing.TB, first8 string) string {
	t.Helper()
	return first8 + fmt.Sprintf("%02d", 97-mod97(t, first8))
}

// ssinOracle decides validity of 11 digits from the rules as written.
func ssinOracle(t testing.TB, d string) bool {
	t.Helper()
	var mm, dd int
	fmt.Sscanf(d[2:6], "%02d%02d", &mm, &dd)
	monthOK := mm <= 12 || (mm >= 20 && mm <= 32) || (mm >= 40 && mm <= 52)
	if !monthOK || dd > 31 {
		return false
	}
	check := d[9:]
	return check == fmt.Sprintf("%02d", 97-mod97(t, d[:9])) ||
		check == fmt.Sprintf("%02d", 97-mod97(t, "2"+d[:9]))
}

func TestNormalizeSSIN(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means invalid
	}{
		// Hand-checked literals.
		{"born 1985", "85073003328", "85073003328"},
		{"born 2000", "00010100105", "00010100105"},
		{"born 2005", "05031512367", "05031512367"},
		{"born 2017", "17022845674", "17022845674"},
		{"bis +20", "85273003371", "85273003371"},
		{"bis +40", "85473003317", "85473003317"},
		{"bis +20 born 1999", "99231299710", "99231299710"},
		{"unknown month and day", "85000003306", "85000003306"},

		// Formatting variants.
		{"dots and dash", "85.07.30-033.28", "85073003328"},
		{"spaces", "85 07 30 033 28", "85073003328"},
		{"dashes", "850730-033-28", "85073003328"},
		{"surrounding whitespace", " \t85073003328\n", "85073003328"},
		{"no-break space", "850730\u00a003328", "85073003328"},

		// Generated with the independent helper.
		{"leap day 2000", makeSSIN(t, "000229", "123", true), "00022912320"},
		{"last day of 1999", makeSSIN(t, "991231", "999", false), makeSSIN(t, "991231", "999", false)},
		{"bis +20 december", makeSSIN(t, "853231", "001", false), makeSSIN(t, "853231", "001", false)},
		{"bis +40 december 2010", makeSSIN(t, "105231", "002", true), makeSSIN(t, "105231", "002", true)},
		{"bis unknown month", makeSSIN(t, "854000", "003", false), makeSSIN(t, "854000", "003", false)},
		{"day unknown", makeSSIN(t, "850700", "004", true), makeSSIN(t, "850700", "004", true)},

		// Invalid.
		{"wrong check digits", "85073003329", ""},
		{"check digits 00", "85073003300", ""},
		{"2000 variant off by one", "00010100106", ""},
		{"10 digits", "8507300332", ""},
		{"12 digits", "850730033280", ""},
		{"letter", "8507300332A", ""},
		{"letter O for zero", "85O73003328", ""},
		{"slash separator", "85/07/30-033.28", ""},
		{"plus sign", "+85073003328", ""},
		{"arabic-indic digits", "٨٥٠٧٣٠٠٣٣٢٨", ""},
		{"empty", "", ""},
		{"only separators", " .-. ", ""},
		{"invalid utf-8", "8507300\xff3328", ""},
		{"month 13", makeSSIN(t, "851301", "001", false), ""},
		{"month 19", makeSSIN(t, "851901", "001", true), ""},
		{"bis month 33", makeSSIN(t, "853301", "001", false), ""},
		{"bis month 39", makeSSIN(t, "853901", "001", false), ""},
		{"bis month 53", makeSSIN(t, "855301", "001", true), ""},
		{"month 99", makeSSIN(t, "859901", "001", false), ""},
		{"day 32", makeSSIN(t, "850132", "001", false), ""},
		{"bis day 32", makeSSIN(t, "852132", "001", true), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NormalizeSSIN(tt.in)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("NormalizeSSIN(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.want != "")
			}
			if v := ValidSSIN(tt.in); v != ok {
				t.Errorf("ValidSSIN(%q) = %v; NormalizeSSIN says %v", tt.in, v, ok)
			}
		})
	}
}

func TestSSINBirthDate(t *testing.T) {
	date := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name string
		in   string
		want time.Time // zero means not known
	}{
		{"born 1985", "85.07.30-033.28", date(1985, time.July, 30)},
		{"born 2000", "00010100105", date(2000, time.January, 1)},
		{"born 2017", "17022845674", date(2017, time.February, 28)},
		{"bis +20", "85273003371", date(1985, time.July, 30)},
		{"bis +40", "85473003317", date(1985, time.July, 30)},
		{"same digits, 2000 variant", makeSSIN(t, "050315", "123", false), date(1905, time.March, 15)},
		{"leap day 2000", makeSSIN(t, "000229", "123", true), date(2000, time.February, 29)},
		{"1900 is no leap year", makeSSIN(t, "000229", "123", false), time.Time{}},
		{"2001 is no leap year", makeSSIN(t, "010229", "123", true), time.Time{}},
		{"31 April", makeSSIN(t, "850431", "123", false), time.Time{}},
		{"unknown date", "85000003306", time.Time{}},
		{"unknown day", makeSSIN(t, "850700", "123", false), time.Time{}},
		{"bis unknown month", makeSSIN(t, "852015", "123", false), time.Time{}},
		{"invalid checksum", "85073003329", time.Time{}},
		{"garbage", "hello", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SSINBirthDate(tt.in)
			if !got.Equal(tt.want) || ok != !tt.want.IsZero() {
				t.Errorf("SSINBirthDate(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, !tt.want.IsZero())
			}
		})
	}
}

// TestSSINMatchesOracle tries every pair of check digits on random first nine
// digits and compares with ssinOracle, so both the accepted and the rejected
// side are covered.
func TestSSINMatchesOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	valid := 0
	for range 300 {
		// Bias the month towards plausible values so the checksum path is hit.
		base := fmt.Sprintf("%02d%02d%02d%03d", rng.IntN(100), rng.IntN(60), rng.IntN(40), rng.IntN(1000))
		for cc := range 100 {
			d := fmt.Sprintf("%s%02d", base, cc)
			want := ssinOracle(t, d)
			if got := ValidSSIN(d); got != want {
				t.Fatalf("ValidSSIN(%q) = %v; oracle says %v", d, got, want)
			}
			if want {
				valid++
			}
		}
	}
	if valid == 0 {
		t.Fatal("no valid number generated; the test checks nothing")
	}
}

func TestNormalizeEnterpriseNumber(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means invalid
	}{
		// Hand-checked literals.
		{"digits", "0203201340", "0203201340"},
		{"official writing", "0203.201.340", "0203201340"},
		{"VAT prefix", "BE0203201340", "0203201340"},
		{"lower-case prefix", "be0203201340", "0203201340"},
		{"prefix and spaces", "BE 0203 201 340", "0203201340"},
		{"prefix and dots", "BE0203.201.340", "0203201340"},
		{"surrounding whitespace", "  0203.201.340\n", "0203201340"},
		{"old 9 digits", "203201340", "0203201340"},
		{"old 9 digits with dots", "203.201.340", "0203201340"},
		{"old 9 digits with prefix", "BE203201340", "0203201340"},
		{"another", "0403.707.169", "0403707169"},
		{"starts with 1", "1000.000.021", "1000000021"},
		{"all zero but one", "0000000196", "0000000196"},

		// Generated with the independent helper.
		{"generated starting 1", makeEnterpriseNumber(t, "12345678"), makeEnterpriseNumber(t, "12345678")},
		{"generated starting 0", makeEnterpriseNumber(t, "08849210"), "0884921003"},

		// Invalid.
		{"wrong check digits", "0203201341", ""},
		{"check digits 00", "0203201300", ""},
		{"starts with 2", makeEnterpriseNumber(t, "22032013"), ""},
		{"starts with 9", makeEnterpriseNumber(t, "92032013"), ""},
		{"11 digits", "02032013400", ""},
		{"8 digits", "20320134", ""},
		{"letter", "0203A01340", ""},
		{"prefix only", "BE", ""},
		{"empty", "", ""},
		{"other country", "NL0203201340", ""},
		{"split prefix", "B E0203201340", ""},
		{"prefix twice", "BEBE0203201340", ""},
		{"prefix at the end", "0203201340BE", ""},
		{"slash", "0203/201/340", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := NormalizeEnterpriseNumber(tt.in)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("NormalizeEnterpriseNumber(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.want != "")
			}
			if v := ValidEnterpriseNumber(tt.in); v != ok {
				t.Errorf("ValidEnterpriseNumber(%q) = %v; NormalizeEnterpriseNumber says %v", tt.in, v, ok)
			}
		})
	}
}

func TestFormatEnterpriseNumber(t *testing.T) {
	tests := []struct {
		in, want string // want "" means invalid
	}{
		{"0203201340", "0203.201.340"},
		{"BE 0203 201 340", "0203.201.340"},
		{"203201340", "0203.201.340"},
		{"1000000021", "1000.000.021"},
		{"0203.201.341", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, ok := FormatEnterpriseNumber(tt.in)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("FormatEnterpriseNumber(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.want != "")
		}
	}
}

func TestEnterpriseNumberMatchesOracle(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	valid := 0
	for range 300 {
		first8 := fmt.Sprintf("%08d", rng.IntN(100_000_000))
		for cc := range 100 {
			d := fmt.Sprintf("%s%02d", first8, cc)
			want := (d[0] == '0' || d[0] == '1') && d == makeEnterpriseNumber(t, first8)
			if got := ValidEnterpriseNumber(d); got != want {
				t.Fatalf("ValidEnterpriseNumber(%q) = %v; oracle says %v", d, got, want)
			}
			if want {
				valid++
			}
		}
	}
	if valid == 0 {
		t.Fatal("no valid number generated; the test checks nothing")
	}
}

func TestBelgianFunctionsCompileErrors(t *testing.T) {
	for _, src := range []string{
		`isSsin(1)`,
		`normalizeSsin(1.5)`,
		`isEnterpriseNumber(true)`,
		`normalizeEnterpriseNumber(["0203201340"])`,
		`formatEnterpriseNumber(nil)`,
		`isSsin()`,
		`isSsin(x, x)`,
		`isSsin(x) + 1`, // bool result is typed too
	} {
		t.Run(src, func(t *testing.T) {
			_, err := exprlang.Compile(src, append(BelgianFunctions(), exprlang.Env(map[string]any{"x": ""}))...)
			if err == nil {
				t.Fatalf("Compile(%q) succeeded; want a type error", src)
			}
		})
	}

	_, err := exprlang.Compile(`isSsin(1)`, append(BelgianFunctions(), exprlang.Env(map[string]any{"x": ""}))...)
	if err == nil || !strings.Contains(err.Error(), "cannot use int as argument (type string) to call isSsin") {
		t.Errorf("Compile(`isSsin(1)`) error = %v; want the argument type named", err)
	}
}

func TestBelgianFunctionsRun(t *testing.T) {
	tests := []struct {
		src  string
		x    any
		want any
	}{
		{`isSsin(x)`, "85.07.30-033.28", true},
		{`isSsin(x)`, "85073003329", false},
		{`normalizeSsin(x)`, "85 07 30 033 28", "85073003328"},
		{`normalizeSsin(x)`, "not a number", ""},
		{`isEnterpriseNumber(x)`, "BE 0203 201 340", true},
		{`isEnterpriseNumber(x)`, "0203201341", false},
		{`normalizeEnterpriseNumber(x)`, "BE0203.201.340", "0203201340"},
		{`normalizeEnterpriseNumber(x)`, "0203201341", ""},
		{`formatEnterpriseNumber(x)`, "203201340", "0203.201.340"},
		{`formatEnterpriseNumber(x)`, "", ""},
		{`isSsin(x) ? normalizeSsin(x) : "rejected"`, "85.07.30-033.28", "85073003328"},
		{`normalizeSsin(x) == "" ? "rejected" : "ok"`, "1", "rejected"},
		{`isSsin("85073003328") && formatEnterpriseNumber("0203201340") == "0203.201.340"`, "", true},

		// The run-time environment need not match the compile-time one:
		// nil and non-strings must not panic.
		{`isSsin(x)`, nil, false},
		{`normalizeSsin(x)`, nil, ""},
		{`isEnterpriseNumber(x)`, nil, false},
		{`normalizeEnterpriseNumber(x)`, nil, ""},
		{`formatEnterpriseNumber(x)`, nil, ""},
		{`isSsin(x)`, 85073003328, false},
		{`formatEnterpriseNumber(x)`, []byte("0203201340"), ""},
		{`isSsin(x)`, namedString("85073003328"), true},
		{`formatEnterpriseNumber(x)`, namedString("0203201340"), "0203.201.340"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%v", tt.src, tt.x), func(t *testing.T) {
			program, err := exprlang.Compile(tt.src, append(BelgianFunctions(), exprlang.Env(map[string]any{"x": ""}))...)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := exprlang.Run(program, map[string]any{"x": tt.x})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %#v; want %#v", got, tt.want)
			}
		})
	}
}

// TestBelgianFunctionsAnyTyped covers arguments whose static type is any, the
// path by which nil reaches the functions in a well-typed program.
func TestBelgianFunctionsAnyTyped(t *testing.T) {
	env := map[string]any{"input": map[string]any{"ssin": nil, "kbo": 42}}
	tests := []struct {
		src  string
		want any
	}{
		{`isSsin(input.ssin)`, false},
		{`normalizeSsin(input.ssin)`, ""},
		{`normalizeSsin(input.missing)`, ""},
		{`isEnterpriseNumber(input.kbo)`, false},
		{`formatEnterpriseNumber(input.kbo)`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			program, err := exprlang.Compile(tt.src, append(BelgianFunctions(), exprlang.Env(env))...)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			got, err := exprlang.Run(program, env)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if got != tt.want {
				t.Errorf("got %#v; want %#v", got, tt.want)
			}
		})
	}
}

type namedString string

func FuzzNormalizeSSIN(f *testing.F) {
	for _, s := range []string{
		"85073003328", "85.07.30-033.28", "00010100105", "85273003371", "85473003317",
		"85000003306", "85073003329", "", "8507300332A", " 85 07 30 033 28 ", "٨٥٠٧٣٠٠٣٣٢٨",
		"99999999999", "8507300\xff3328",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := NormalizeSSIN(s)
		if ValidSSIN(s) != ok {
			t.Fatalf("ValidSSIN(%q) disagrees with NormalizeSSIN", s)
		}
		date, dateOK := SSINBirthDate(s)
		if !ok {
			if n != "" || dateOK {
				t.Fatalf("invalid %q gave %q, date %v %v", s, n, date, dateOK)
			}
			return
		}
		if len(n) != 11 || strings.Trim(n, "0123456789") != "" {
			t.Fatalf("NormalizeSSIN(%q) = %q; want 11 digits", s, n)
		}
		if !ssinOracle(t, n) {
			t.Fatalf("NormalizeSSIN(%q) = %q, which the oracle rejects", s, n)
		}
		if again, ok := NormalizeSSIN(n); !ok || again != n {
			t.Fatalf("NormalizeSSIN(%q) = %q, %v; not idempotent", n, again, ok)
		}
		formatted := n[0:2] + "." + n[2:4] + "." + n[4:6] + "-" + n[6:9] + "." + n[9:11]
		if back, ok := NormalizeSSIN(formatted); !ok || back != n {
			t.Fatalf("NormalizeSSIN(%q) = %q, %v; want %q", formatted, back, ok, n)
		}
		if dateOK {
			if got := date.Format("060102"); got[0:2] != n[0:2] || got[4:6] != n[4:6] {
				t.Fatalf("SSINBirthDate(%q) = %v; does not match the digits", n, date)
			}
			if y := date.Year(); y < 1900 || y > 2099 {
				t.Fatalf("SSINBirthDate(%q) = %v; year out of range", n, date)
			}
		}
	})
}

func FuzzNormalizeEnterpriseNumber(f *testing.F) {
	for _, s := range []string{
		"0203201340", "0203.201.340", "BE0203201340", "BE 0203 201 340", "203201340",
		"be203.201.340", "0203201341", "", "BE", "2203201399", "1000000021", "B\xffE0203201340",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, ok := NormalizeEnterpriseNumber(s)
		if ValidEnterpriseNumber(s) != ok {
			t.Fatalf("ValidEnterpriseNumber(%q) disagrees with NormalizeEnterpriseNumber", s)
		}
		formatted, fok := FormatEnterpriseNumber(s)
		if fok != ok {
			t.Fatalf("FormatEnterpriseNumber(%q) ok = %v; NormalizeEnterpriseNumber ok = %v", s, fok, ok)
		}
		if !ok {
			if n != "" || formatted != "" {
				t.Fatalf("invalid %q gave %q and %q", s, n, formatted)
			}
			return
		}
		if len(n) != 10 || strings.Trim(n, "0123456789") != "" || (n[0] != '0' && n[0] != '1') {
			t.Fatalf("NormalizeEnterpriseNumber(%q) = %q; want 10 digits starting 0 or 1", s, n)
		}
		if n != makeEnterpriseNumber(t, n[:8]) {
			t.Fatalf("NormalizeEnterpriseNumber(%q) = %q, which the oracle rejects", s, n)
		}
		if again, ok := NormalizeEnterpriseNumber(n); !ok || again != n {
			t.Fatalf("NormalizeEnterpriseNumber(%q) = %q, %v; not idempotent", n, again, ok)
		}
		if want := n[0:4] + "." + n[4:7] + "." + n[7:10]; formatted != want {
			t.Fatalf("FormatEnterpriseNumber(%q) = %q; want %q", s, formatted, want)
		}
		if back, ok := NormalizeEnterpriseNumber(formatted); !ok || back != n {
			t.Fatalf("NormalizeEnterpriseNumber(%q) = %q, %v; want %q", formatted, back, ok, n)
		}
		if again, ok := FormatEnterpriseNumber(formatted); !ok || again != formatted {
			t.Fatalf("FormatEnterpriseNumber(%q) = %q, %v; not idempotent", formatted, again, ok)
		}
		if back, ok := NormalizeEnterpriseNumber("BE" + n); !ok || back != n {
			t.Fatalf("NormalizeEnterpriseNumber(%q) = %q, %v; want %q", "BE"+n, back, ok, n)
		}
	})
}
