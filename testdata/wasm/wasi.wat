;; wasi.wat — reads the WASI clock and random source, to show what the sandbox
;; grants. Input 'c': the realtime clock as 8 little-endian bytes (nanoseconds
;; since the epoch). Input 'r': 16 bytes from random_get. A sandbox without the
;; clock capability answers a fixed time; without random, a fixed sequence.
(module
  (import "wasi_snapshot_preview1" "clock_time_get"
    (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get"
    (func $random_get (param i32 i32) (result i32)))
  (memory (export "memory") 1)
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
  ;; output at 2048
  (func (export "transform") (param $ptr i32) (param $len i32) (result i64)
    local.get $ptr
    i32.load8_u
    i32.const 99 ;; 'c'
    i32.eq
    if
      i32.const 0 ;; realtime
      i64.const 1
      i32.const 2048
      call $clock_time_get
      if
        unreachable
      end
      i64.const 0x0000080000000008 ;; 2048 << 32 | 8
      return
    end
    i32.const 2048
    i32.const 16
    call $random_get
    if
      unreachable
    end
    i64.const 0x0000080000000010) ;; 2048 << 32 | 16
)
