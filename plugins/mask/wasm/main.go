// Command wasm is the mask plugin as a WebAssembly module; the logic is in
// package github.com/openfsb/fsb/plugins/mask. Build it with
//
//	go run ./cmd/fsb plugin build -o plugins/mask/mask.wasm plugins/mask/wasm
package main

import (
	"github.com/openfsb/fsb/plugins/mask"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() { guest.Transform(mask.Transform) }

func main() {}
