// Package flow compiles flow documents into immutable plans and executes
// them. It knows sources only through the connector interface and
// consumers only through the expression environment; it must not know about
// HTTP servers, transports or the audit store.
//
// Execution keeps a source's raw response bytes and decodes them only when an
// expression reads into them: an output field that is exactly
// steps.x.body (or a constant path inside it) is copied byte for byte.
package flow
