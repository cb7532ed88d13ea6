;; command.wat — a WASI command (it exports _start), as `go build` without
;; -buildmode=c-shared makes: the host refuses it and says how to build a
;; reactor.
(module
  (memory (export "memory") 1)
  (func (export "_start"))
  (func (export "abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "free") (param i32 i32))
  (func (export "transform") (param i32 i32) (result i64) i64.const 0)
)
