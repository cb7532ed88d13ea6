// Package audit owns the privacy audit trail: the versioned event record,
// its durable store (an append-only segment log with group commit, fail
// closed; a Badger store of the previous format is migrated), the hash chain and
// the signed checkpoints that make it tamper-evident, the indexes and
// queries (by trace id, organisation, service, time, data subject, and the
// citizen view), retention, export, backup and restore.
//
// The gateway drives it per consumer call: Store.Begin before any source is
// called (or Store.Refuse for a refused call), Call.Finish before the
// answer leaves. Each returns only once the record is synced to disk; an
// error means the call must be answered with serviceUnavailable.
//
// It must not know about HTTP frameworks, flows, connectors or the access
// registry: callers hand it plain strings and numbers. Keys (the Ed25519
// checkpoint signer, the subject HMAC key, the body encryption key) are
// supplied by the caller and never stored. README.md beside this file
// describes the record format, the chain, proofs and the measured numbers.
//
// Locks: the writer goroutine owns the chain state (seq, head, last
// checkpoint) and publishes a copy under Store.mu; no other lock is held
// while Store.mu is taken, and Store.mu is never held across I/O. The
// segment list is under segLog.mu (readers take a reference on a segment
// before reading it, so a prune rewrite can replace it underneath).
package audit
