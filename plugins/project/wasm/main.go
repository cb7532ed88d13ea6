// Command wasm is the project plugin as a WebAssembly module; the logic is in
// package github.com/openfsb/fsb/plugins/project. Build it with
//
//	go run ./cmd/fsb plugin build -o plugins/project/project.wasm plugins/project/wasm
package main

import (
	"github.com/openfsb/fsb/plugins/project"
	"github.com/openfsb/fsb/sdk/guest"
)

func init() { guest.Transform(project.Transform) }

func main() {}
