;; locate.wat — a non-Go guest of fsb.json_locate and fsb.hmac_sha256.
;; transform calls fsb.json_locate on its input with the paths
;; ["a","b[*]"] and answers the raw span records (12 bytes each); an input
;; starting with '!' passes an input pointer outside memory instead, one
;; starting with '#' asks for the HMAC-SHA256 of the input under key "k"
;; and answers its 32 bytes.
(module
  (import "fsb" "json_locate" (func $locate (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "fsb" "hmac_sha256" (func $hmac (param i32 i32 i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "[\22a\22,\22b[*]\22]")   ;; 12 bytes at 16
  (data (i32.const 32) "k")
  (func (export "abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param $size i32) (result i32)
    local.get $size
    i32.const 30000
    i32.gt_u
    if (result i32)
      i32.const 0
    else
      i32.const 1024
    end)
  (func (export "free") (param $ptr i32) (param $size i32))
  (func (export "transform") (param $ptr i32) (param $len i32) (result i64)
    (local $n i32)
    ;; '#' : the HMAC of the input, at 40000
    (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 35))
      (then
        (call $hmac (i32.const 32) (i32.const 1) (local.get $ptr) (local.get $len) (i32.const 40000))
        (return (i64.or (i64.shl (i64.const 40000) (i64.const 32)) (i64.const 32)))))
    ;; '!' : input outside memory
    (if (i32.eq (i32.load8_u (local.get $ptr)) (i32.const 33))
      (then (local.set $ptr (i32.const 0xfffffff0))))
    ;; the spans, at 32768, with room for 256 records
    (local.set $n (call $locate (local.get $ptr) (local.get $len) (i32.const 16) (i32.const 12) (i32.const 32768) (i32.const 3072)))
    (if (i32.lt_s (local.get $n) (i32.const 0))
      (then (return (i64.or (i64.const 0x80000000) (i64.const 0)))))
    (i64.or (i64.shl (i64.const 32768) (i64.const 32)) (i64.extend_i32_u (local.get $n))))
)
