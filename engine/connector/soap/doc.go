// Package soap is the connector for SOAP sources: it reads a WSDL 1.1
// document (document/literal, SOAP 1.1 and 1.2 bindings, the XSD in its
// types and the local files it imports) into ports and operations with a
// compact schema tree per message, and calls an operation over HTTP.
//
// It owns the WSDL and XSD reading (load time: Load, Parse, Port,
// Operation, RequestField for `fsb validate`) and the HTTP exchange
// (Client, a connector.Connector). It does not build or read envelopes
// itself: a Codec does, given the operation's CodecConfig — the soap
// plugin (plugins/soap), natively or as a sandboxed WebAssembly module.
// It must not know about flows, expressions, consumers or the gateway.
//
// Errors about a WSDL read as file:line:col: message. README.md documents
// what a flow author needs: supported WSDL features, the JSON mapping,
// faults and limits.
package soap
