//go:build !unix

package audit

import "os"

func lockDir(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE, filePerm)
}
