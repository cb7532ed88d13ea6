;; initloop.wat — its _initialize (the WASI reactor start function) spins
;; forever: an untrusted module must be stopped while it is being instantiated.
(module
  (memory (export "memory") 1)
  (func (export "_initialize")
    loop $spin
      br $spin
    end)
  (func (export "abi_version") (result i32) i32.const 1)
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
    i64.const 0)
)
