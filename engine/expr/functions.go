package expr

import (
	"reflect"

	exprlang "github.com/expr-lang/expr"
)

// BelgianFunctions returns the expression functions for Belgian identifiers:
//
//	isSsin(string) bool
//	normalizeSsin(string) string              // "" when invalid
//	isEnterpriseNumber(string) bool
//	normalizeEnterpriseNumber(string) string  // "" when invalid
//	formatEnterpriseNumber(string) string     // "" when invalid
//
// Each carries its signature, so a call with a non-string argument fails at
// compile time. A value that is nil or not a string at run time (possible when
// the argument's static type is any) gives false or "" rather than an error.
func BelgianFunctions() []exprlang.Option {
	return []exprlang.Option{
		predicate("isSsin", ValidSSIN),
		transform("normalizeSsin", NormalizeSSIN),
		predicate("isEnterpriseNumber", ValidEnterpriseNumber),
		transform("normalizeEnterpriseNumber", NormalizeEnterpriseNumber),
		transform("formatEnterpriseNumber", FormatEnterpriseNumber),
	}
}

// predicate exposes check as name(string) bool.
func predicate(name string, check func(string) bool) exprlang.Option {
	return exprlang.Function(name, func(params ...any) (any, error) {
		s, ok := stringParam(params)
		return ok && check(s), nil
	}, new(func(string) bool))
}

// transform exposes convert as name(string) string, with "" for a value
// convert rejects.
func transform(name string, convert func(string) (string, bool)) exprlang.Option {
	return exprlang.Function(name, func(params ...any) (any, error) {
		s, ok := stringParam(params)
		if !ok {
			return "", nil
		}
		out, ok := convert(s)
		if !ok {
			return "", nil
		}
		return out, nil
	}, new(func(string) string))
}

// stringParam returns the single argument as a string. The compile-time check
// only admits static type string, but a value typed any (a map entry, a
// variable whose run-time value differs from the compile-time one) can hold
// nil, another type, or a named string type, which is accepted.
func stringParam(params []any) (string, bool) {
	if len(params) != 1 {
		return "", false
	}
	switch v := params[0].(type) {
	case string:
		return v, true
	case nil:
		return "", false
	}
	if v := reflect.ValueOf(params[0]); v.Kind() == reflect.String {
		return v.String(), true
	}
	return "", false
}
