;; noexport.wat — has no alloc export.
(module
  (memory (export "memory") 1)
  (func (export "abi_version") (result i32) i32.const 1)
  (func (export "free") (param $ptr i32) (param $size i32))
  (func (export "transform") (param $ptr i32) (param $len i32) (result i64)
    i64.const 0)
)
