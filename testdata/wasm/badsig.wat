;; badsig.wat — transform has type (i32) -> i32 instead of (i32, i32) -> i64.
(module
  (memory (export "memory") 1)
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
  (func (export "transform") (param $ptr i32) (result i32)
    local.get $ptr)
)
