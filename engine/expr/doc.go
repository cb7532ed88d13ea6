// Package expr owns the expression environment of the service integrator and
// the custom functions exposed to expressions, such as the Belgian identifier
// checks (SSIN/INSZ and KBO/BCE enterprise numbers).
//
// It must not know about flows, connectors or the gateway: callers hand it
// values and get values back. Anything that needs those packages belongs in
// them, not here.
//
// # Design notes
//
// The identifier checks in belgian.go are plain Go with no dependency on the
// expression engine, so that validation code outside expressions uses the very
// same rules; functions.go only adapts them to expr-lang.
//
// Inside expressions the functions never fail: an invalid or missing value
// gives false or "". Expressions run on untrusted request data, and a flow
// author can test the result (normalizeSsin(x) != "") far more easily than
// handle a run-time error. Argument types are nevertheless checked when the
// expression is compiled, so isSsin(1) is rejected before anything runs.
//
// SSIN checksums come in two variants: people born in 2000 or later get a "2"
// prefixed to the first nine digits before the mod 97. The number itself does
// not say which variant applies, so both are accepted, and the variant that
// matches is what decides the century of the birth date.
package expr
