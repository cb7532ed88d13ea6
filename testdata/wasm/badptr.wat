;; badptr.wat — returns an output pointer (0xffff0000) outside its 64 KiB memory.
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
  (func (export "transform") (param $ptr i32) (param $len i32) (result i64)
    i64.const 0xffff0000
    i64.const 32
    i64.shl
    i64.const 5
    i64.or)
)
