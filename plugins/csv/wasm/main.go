// Command wasm is the csv codec plugin as a WebAssembly module, with the
// operation decode (CSV bytes → JSON records); the logic is in package
// github.com/openfsb/fsb/plugins/csv. Build it with
//
//	go run ./cmd/fsb plugin build -o plugins/csv/csv.wasm plugins/csv/wasm
package main

import (
	"github.com/openfsb/fsb/plugins/csv"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() { guest.Decode(csv.Decode) }

func main() {}
