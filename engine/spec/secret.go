package spec

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Read returns the secret's value from the environment (through lookupEnv,
// os.LookupEnv when nil) or its file, whose relative path is resolved
// against the directory of the document that names it. Errors name where it
// was looked for, never what it holds. A file readable by everyone is
// refused.
func (s *Secret) Read(lookupEnv func(string) (string, bool)) (string, error) {
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	switch {
	case s == nil:
		return "", errors.New("missing")
	case s.Env != "":
		v, ok := lookupEnv(s.Env)
		if !ok || v == "" {
			return "", fmt.Errorf("environment variable %s is not set", s.Env)
		}
		return v, nil
	case s.File != "":
		path := s.File
		if !filepath.IsAbs(path) && s.Pos.File != "" {
			path = filepath.Join(filepath.Dir(s.Pos.File), path)
		}
		info, err := os.Stat(path)
		if err != nil {
			return "", fmt.Errorf("secret file %s: %w", path, errors.Unwrap(err))
		}
		if info.Mode().Perm()&0o004 != 0 {
			return "", fmt.Errorf("secret file %s is readable by everyone: chmod o-r it", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", fmt.Errorf("secret file %s: %w", path, errors.Unwrap(err))
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return "", fmt.Errorf("secret file %s is empty", path)
		}
		return v, nil
	}
	return "", errors.New("a secret names env or file")
}
