;; echo.wat — a complete OpenFSB plugin (ABI v1) written by hand, with no
;; compiler and no SDK: the proof that the ABI is language-neutral.
;;
;; The operation `transform` returns its input. The first byte of the input can
;; make it misbehave on purpose, so one module can drive a host through every
;; failure it must survive (tests and the hammer test use this):
;;
;;   '!'  trap (unreachable)
;;   '?'  fail: set the failure bit, message "asked to fail"
;;   '#'  return an output pointer far outside memory
;;   '>'  return an output length far above any limit
;;   '~'  spin forever
;;   '+'  grow memory one page at a time until refused, then trap (out of memory)
;;   '*'  call fsb.log with a message outside memory
;;   '$'  return the call's configuration, read through fsb.config
;;   '%'  log the input through fsb.log at info, then echo it
;;   '0'  return an empty output (JSON null)
;;   '^'  return the sum of the input bytes (4 bytes, little endian): a
;;        loop with one back-edge per byte, to measure deadline checks
;;   anything else: echo
;;
;; Memory: bytes 16..28 hold the failure message; the heap starts at 1024. The
;; allocator bumps a pointer and counts live buffers; when the last one is
;; freed, the heap starts over. The host frees every output it copies, so
;; after each successful call the heap is empty again.
(module
  (import "fsb" "config" (func $config (param i32 i32) (result i32)))
  (import "fsb" "log" (func $log (param i32 i32 i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "asked to fail")

  (global $heap_base i32 (i32.const 1024))
  (global $bump (mut i32) (i32.const 1024))
  (global $live (mut i32) (i32.const 0))

  (func (export "abi_version") (result i32)
    i32.const 1)

  ;; alloc(size) -> ptr, 0 when memory cannot grow.
  (func $alloc (export "alloc") (param $size i32) (result i32)
    (local $p i32)
    (local $end i64)
    (local $have i64)
    local.get $size
    i32.const 0
    i32.lt_s
    if ;; sizes of 2 GiB and more are refused
      i32.const 0
      return
    end
    global.get $bump
    local.set $p
    ;; end = p + size, in 64 bits so it cannot wrap
    local.get $p
    i64.extend_i32_u
    local.get $size
    i64.extend_i32_u
    i64.add
    local.set $end
    memory.size
    i64.extend_i32_u
    i64.const 16
    i64.shl
    local.set $have
    local.get $end
    local.get $have
    i64.gt_u
    if ;; grow by ceil((end - have) / 64 KiB) pages
      local.get $end
      local.get $have
      i64.sub
      i64.const 65535
      i64.add
      i64.const 16
      i64.shr_u
      i32.wrap_i64
      memory.grow
      i32.const -1
      i32.eq
      if
        i32.const 0
        return
      end
    end
    local.get $end
    i32.wrap_i64
    global.set $bump
    global.get $live
    i32.const 1
    i32.add
    global.set $live
    local.get $p)

  ;; free(ptr, size): the heap starts over once nothing is live.
  (func $free (export "free") (param $ptr i32) (param $size i32)
    global.get $live
    i32.eqz
    if
      return
    end
    global.get $live
    i32.const 1
    i32.sub
    global.set $live
    global.get $live
    i32.eqz
    if
      global.get $heap_base
      global.set $bump
    end)

  ;; result(ptr, len) = ptr << 32 | len
  (func $result (param $ptr i32) (param $len i32) (result i64)
    local.get $ptr
    i64.extend_i32_u
    i64.const 32
    i64.shl
    local.get $len
    i64.extend_i32_u
    i64.or)

  (func (export "transform") (param $ptr i32) (param $len i32) (result i64)
    (local $c i32)
    (local $n i32)
    (local $buf i32)
    local.get $len
    i32.eqz
    if ;; empty input: echo nothing
      i64.const 0
      return
    end
    local.get $ptr
    i32.load8_u
    local.set $c

    ;; '!' trap
    local.get $c
    i32.const 33
    i32.eq
    if
      unreachable
    end

    ;; '?' failure bit with a message
    local.get $c
    i32.const 63
    i32.eq
    if
      local.get $ptr
      local.get $len
      call $free
      i32.const 16
      i32.const 13
      call $result
      i64.const 0x80000000
      i64.or
      return
    end

    ;; '#' output pointer outside memory
    local.get $c
    i32.const 35
    i32.eq
    if
      i32.const 0xffffff00
      local.get $len
      call $result
      return
    end

    ;; '>' output length far above any limit
    local.get $c
    i32.const 62
    i32.eq
    if
      local.get $ptr
      i32.const 0x7ffffff0
      call $result
      return
    end

    ;; '~' spin forever
    local.get $c
    i32.const 126
    i32.eq
    if
      loop $spin
        br $spin
      end
    end

    ;; '+' grow until refused, then trap like a real allocator would
    local.get $c
    i32.const 43
    i32.eq
    if
      loop $grow
        i32.const 1
        memory.grow
        i32.const -1
        i32.ne
        br_if $grow
      end
      unreachable
    end

    ;; '*' log a message outside memory
    local.get $c
    i32.const 42
    i32.eq
    if
      i32.const 0
      i32.const 0xfffffff0
      i32.const 100
      call $log
    end

    ;; '$' return the configuration
    local.get $c
    i32.const 36
    i32.eq
    if
      i32.const 0
      i32.const 0
      call $config ;; length only
      local.set $n
      local.get $n
      call $alloc
      local.set $buf
      local.get $buf
      i32.eqz
      if
        unreachable
      end
      local.get $buf
      local.get $n
      call $config
      local.get $n
      i32.ne
      if ;; the configuration changed length within one call
        unreachable
      end
      local.get $ptr
      local.get $len
      call $free
      local.get $buf
      local.get $n
      call $result
      return
    end

    ;; '%' log the input at info, then echo
    local.get $c
    i32.const 37
    i32.eq
    if
      i32.const 0
      local.get $ptr
      local.get $len
      call $log
    end

    ;; '0' empty output
    local.get $c
    i32.const 48
    i32.eq
    if
      local.get $ptr
      local.get $len
      call $free
      i64.const 0
      return
    end

    ;; '^' sum the bytes into the first 4 bytes of the input buffer
    local.get $c
    i32.const 94
    i32.eq
    if
      i32.const 0
      local.set $n ;; index
      i32.const 0
      local.set $buf ;; sum
      loop $sum
        local.get $buf
        local.get $ptr
        local.get $n
        i32.add
        i32.load8_u
        i32.add
        local.set $buf
        local.get $n
        i32.const 1
        i32.add
        local.tee $n
        local.get $len
        i32.lt_u
        br_if $sum
      end
      local.get $ptr
      local.get $buf
      i32.store
      local.get $ptr
      i32.const 4
      call $result
      return
    end

    ;; echo: the input buffer becomes the output buffer
    local.get $ptr
    local.get $len
    call $result)
)
