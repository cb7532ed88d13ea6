//go:build !unix

package wasm

import "io/fs"

// checkPrivate has no portable owner or mode bits to check outside unix;
// the directory's ACL is the operator's to set.
func checkPrivate(fs.FileInfo) error { return nil }
