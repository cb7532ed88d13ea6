package audit

// The records hold pseudonymised personal data and purposes: everything
// the store creates is for its owner only. (The index, in
// internal/termindex, uses the same modes.)
const (
	dirPerm  = 0o700
	filePerm = 0o600
)
