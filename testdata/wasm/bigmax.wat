;; bigmax.wat — declares a maximum memory of 2 GiB (as Emscripten does) and grows
;; without end: the host clamps it to maxMemory instead of refusing it, and
;; the grow that crosses the limit is refused (ErrMemory).
(module
  (memory (export "memory") 1 32768)
  (func (export "abi_version") (result i32) i32.const 1)
  ;; one fixed buffer at 1024 is enough for the small inputs tests send
  (func (export "alloc") (param $size i32) (result i32)
    local.get $size
    i32.const 60000
    i32.gt_u
    if (result i32)
      i32.const 0
    else
      i32.const 1024
    end)
  (func (export "free") (param $ptr i32) (param $size i32))
  (func (export "transform") (param $ptr i32) (param $len i32) (result i64)
    loop $grow
      i32.const 1
      memory.grow
      i32.const -1
      i32.ne
      br_if $grow
    end
    ;; out of memory: abort, as Go, Rust and C runtimes do
    unreachable)
)
