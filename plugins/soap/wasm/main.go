// Command wasm is the soap codec plugin as a WebAssembly module, with the
// operations encode (JSON → SOAP envelope) and decode (SOAP response →
// JSON); the logic is in package github.com/openfsb/fsb/plugins/soap. Build
// it with
//
//	go run ./cmd/fsb plugin build -o plugins/soap/soap.wasm plugins/soap/wasm
package main

import (
	"github.com/openfsb/fsb/plugins/soap"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() {
	guest.Encode(soap.Encode)
	guest.Decode(soap.Decode)
}

func main() {}
