;; A workflow that knows nothing of cancellation: it sleeps 100 ms, 100 times, and
;; never calls task.cancelled. Cancelled, it must not finish `complete`.
(module
  (import "durable:core/timer@0.1.0" "sleep" (func $sleep (param i64)))
  (memory (export "memory") 1)
  (data (i32.const 32) "\"done\"")
  (global $heap (mut i32) (i32.const 4096))
  (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
    (local $p i32)
    (local.set $p
      (i32.and
        (i32.sub (i32.add (global.get $heap) (local.get 2)) (i32.const 1))
        (i32.sub (i32.const 0) (local.get 2))))
    (global.set $heap (i32.add (local.get $p) (local.get 3)))
    (local.get $p))
  (func (export "run") (param i32 i32 i32 i32) (result i32)
    (local $i i32)
    (loop $again
      (call $sleep (i64.const 100000000))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100))))
    (i32.store8 (i32.const 512) (i32.const 0))
    (i32.store (i32.const 516) (i32.const 32))
    (i32.store (i32.const 520) (i32.const 6))
    (i32.const 512)))
