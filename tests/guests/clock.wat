;; A workflow that reads the WASI monotonic clock around durable calls, by hand.
;; Built against the `clocked` world (the workflow world plus wasi:clocks and
;; wasi:io, see tests/guests/wat.py). It returns three readings as a JSON string of
;; hex numbers, "t0 t1 t2":
;;   t0 = now()
;;   timer.sleep(1 ms)                      a durable sleep moves the clock by 1 ms
;;   t1 = now()
;;   block on subscribe-duration(5 s)       ready at once; the clock jumps 5 s
;;   step "inside": its body reads now() three times (not run on replay)
;;   t2 = now()
(module
  (import "wasi:clocks/monotonic-clock@0.2.9" "now" (func $now (result i64)))
  (import "wasi:clocks/monotonic-clock@0.2.9" "subscribe-duration"
    (func $subscribe (param i64) (result i32)))
  (import "wasi:io/poll@0.2.9" "[method]pollable.block" (func $block (param i32)))
  (import "wasi:io/poll@0.2.9" "[resource-drop]pollable" (func $drop (param i32)))
  (import "durable:core/timer@0.1.0" "sleep" (func $sleep (param i64)))
  (import "durable:core/step@0.1.0" "enter" (func $enter (param i32 i32 i32 i32 i32 i32)))
  (import "durable:core/step@0.1.0" "exit" (func $exit (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "inside")
  (data (i32.const 32) "1")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p
      (i32.and
        (i32.sub (i32.add (global.get $heap) (local.get 2)) (i32.const 1))
        (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow (i32.add (i32.shr_u (local.get 3) (i32.const 16)) (i32.const 1))))))
    (local.get $p))
  ;; Write `v` as 16 lowercase hex digits at `at`.
  (func $hex (param $v i64) (param $at i32)
    (local $i i32) (local $n i32)
    (loop $digits
      (local.set $n (i32.wrap_i64 (i64.and
        (i64.shr_u (local.get $v) (i64.extend_i32_u
          (i32.sub (i32.const 60) (i32.mul (local.get $i) (i32.const 4)))))
        (i64.const 15))))
      (i32.store8 (i32.add (local.get $at) (local.get $i))
        (i32.add (local.get $n)
          (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $n) (i32.const 10)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $digits (i32.lt_u (local.get $i) (i32.const 16)))))
  (func (export "run") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (i32.store8 (i32.const 1024) (i32.const 34))  ;; "
    (call $hex (call $now) (i32.const 1025))
    (i32.store8 (i32.const 1041) (i32.const 32))
    (call $sleep (i64.const 1000000))
    (call $hex (call $now) (i32.const 1042))
    (i32.store8 (i32.const 1058) (i32.const 32))
    (local.set $p (call $subscribe (i64.const 5000000000)))
    (call $block (local.get $p))
    (call $drop (local.get $p))
    (call $enter (i32.const 16) (i32.const 6) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 256))
    (if (i32.eqz (i32.load8_u (i32.const 256)))
      (then
        (drop (call $now))
        (drop (call $now))
        (drop (call $now))
        (call $exit (i32.const 32) (i32.const 1))))
    (call $hex (call $now) (i32.const 1059))
    (i32.store8 (i32.const 1075) (i32.const 34))
    (i32.store8 (i32.const 512) (i32.const 0))
    (i32.store (i32.const 516) (i32.const 1024))
    (i32.store (i32.const 520) (i32.const 52))
    (i32.const 512)))
