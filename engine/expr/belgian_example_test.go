package expr_test

import (
	"fmt"

	exprlang "github.com/expr-lang/expr"

	"github.com/openfsb/fsb/engine/expr"
)

func ExampleNormalizeSSIN() {
	ssin, ok := expr.NormalizeSSIN("85.07.30-033.28")
	fmt.Println(ssin, ok)

	born, ok := expr.SSINBirthDate(ssin)
	fmt.Println(born.Format("2006-01-02"), ok)

	fmt.Println(expr.ValidSSIN("85.07.30-033.29"))
	// Output:
	// 85073003328 true
	// 1985-07-30 true
	// false
}

func ExampleFormatEnterpriseNumber() {
	for _, in := range []string{"BE 0203 201 340", "203201340", "0203.201.341"} {
		out, ok := expr.FormatEnterpriseNumber(in)
		fmt.Printf("%q %v\n", out, ok)
	}
	// Output:
	// "0203.201.340" true
	// "0203.201.340" true
	// "" false
}

func ExampleBelgianFunctions() {
	opts := append(expr.BelgianFunctions(), exprlang.Env(map[string]any{"vat": ""}))

	program, err := exprlang.Compile(`isEnterpriseNumber(vat) ? formatEnterpriseNumber(vat) : "invalid"`, opts...)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, vat := range []string{"BE0203201340", "BE0203201341"} {
		out, err := exprlang.Run(program, map[string]any{"vat": vat})
		fmt.Println(out, err)
	}

	_, err = exprlang.Compile(`isSsin(42)`, opts...)
	fmt.Println(err != nil)
	// Output:
	// 0203.201.340 <nil>
	// invalid <nil>
	// true
}
