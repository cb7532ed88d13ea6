// Command wasm is the fixedwidth codec plugin as a WebAssembly module,
// with the operation decode (fixed-width records → JSON); the logic is in
// package github.com/openfsb/fsb/plugins/fixedwidth. Build it with
//
//	go run ./cmd/fsb plugin build -o plugins/fixedwidth/fixedwidth.wasm plugins/fixedwidth/wasm
package main

import (
	"github.com/openfsb/fsb/plugins/fixedwidth"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() { guest.Decode(fixedwidth.Decode) }

func main() {}
