// Package wasm runs OpenFSB plugins: WebAssembly modules that implement the
// plugin ABI (sdk/ABI.md) in a sandbox, on wazero.
//
// It owns the sandbox (no file system, network, environment, real clock or
// randomness unless granted), the per-module limits (memory, time, input and
// output size), the deadline checks compiled into untrusted modules
// (instrument.go), the bounded pool of instances each module keeps, the fsb
// host functions (config, log, json_locate, hmac_sha256) and the on-disk
// compilation cache. It hands the
// caller bytes in and bytes out and typed errors (ErrTimeout, ErrMemory,
// ErrTrap, ErrBadOutput, ErrTooLarge, ErrGuest) to map onto problems.
//
// It must not know about flows, steps beyond their name in logs, HTTP,
// problem documents or where a module's bytes come from: the flow engine
// declares modules (ModuleSpec), calls operations and decides what a failure
// means to a consumer.
//
// Lifecycle: NewHost → Host.Load (verify digest, instrument if untrusted,
// compile once per digest and trust, check exports and imports, probe
// abi_version) → Module.Call, concurrently →
// Module.Close → Host.Close. RATIONALE.md says why it is built this way.
package wasm
