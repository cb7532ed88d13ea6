;; indirect.wat — exercises what the host's timeout instrumentation rewrites
;; (engine/wasm/instrument.go): an imported function before the defined ones,
;; calls, call_indirect through an active element segment, ref.func in a
;; global's initialiser and in a passive segment, a start function, exports
;; and names. transform answers "ok:" followed by five digits, each computed
;; through a different kind of function reference; any index moved wrongly
;; gives another digit or a trap.
(module
  (import "fsb" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  (table $t 4 funcref)
  (global $started (mut i32) (i32.const 0))
  (global $ref funcref (ref.func $three))
  (elem (table $t) (i32.const 0) func $one $two)
  (elem $later funcref (ref.func $four) (ref.func $five))
  (type $digit (func (result i32)))
  (start $start)

  (func $start (global.set $started (i32.const 7)))
  (func $one (result i32) i32.const 1)
  (func $two (result i32) i32.const 2)
  (func $three (result i32) i32.const 3)
  (func $four (result i32) i32.const 4)
  (func $five (result i32) i32.const 5)

  (func (export "abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param $size i32) (result i32) i32.const 1024)
  (func (export "free") (param $ptr i32) (param $size i32))

  ;; store8 digit d at 2048+i
  (func $put (param $i i32) (param $d i32)
    (i32.store8 (i32.add (i32.const 2048) (local.get $i))
                (i32.add (i32.const 48) (local.get $d))))

  (func (export "transform") (param $ptr i32) (param $len i32) (result i64)
    (local $i i32)
    ;; "ok:" then the digits
    (i32.store8 (i32.const 2045) (i32.const 111))
    (i32.store8 (i32.const 2046) (i32.const 107))
    (i32.store8 (i32.const 2047) (i32.const 58))
    ;; a loop of 3000 iterations (the poll runs every 1024) around call_indirect
    (loop $again
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 3000))))
    (call $put (i32.const 0) (call_indirect (type $digit) (i32.const 0)))
    (call $put (i32.const 1) (call_indirect (type $digit) (i32.const 1)))
    (table.set $t (i32.const 2) (global.get $ref))
    (call $put (i32.const 2) (call_indirect (type $digit) (i32.const 2)))
    (table.init $t $later (i32.const 3) (i32.const 1) (i32.const 1))
    (call $put (i32.const 3) (call_indirect (type $digit) (i32.const 3)))
    (call $put (i32.const 4) (global.get $started))
    (call $log (i32.const 0) (i32.const 2045) (i32.const 8))
    (i64.or (i64.shl (i64.const 2045) (i64.const 32)) (i64.const 8)))
)
