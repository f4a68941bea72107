;; A workflow written by hand in WebAssembly text: one durable step, then a result.
;; Built by `wasm-tools component embed` (with `durable wit`'s package) and
;; `wasm-tools component new`. Canonical ABI, by hand:
;;   step.enter(label, digest: option<string>) -> option<string>: 5 flat params and a
;;     pointer to a return area (option tag at +0, string at +4/+8);
;;   step.exit(payload: string): pointer and length;
;;   run(entry, input) -> result<string, workflow-error>: returns a pointer to a
;;     result area (tag at +0, ok string at +4/+8).
(module
  (import "durable:core/step@0.1.0" "enter" (func $enter (param i32 i32 i32 i32 i32 i32)))
  (import "durable:core/step@0.1.0" "exit" (func $exit (param i32 i32)))
  (memory (export "memory") 2)
  (data (i32.const 16) "greet")
  (data (i32.const 32) "\"hello from wat\"")
  ;; A bump allocator for the strings the host copies in; nothing is ever freed.
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
  (func (export "run") (param i32 i32 i32 i32) (result i32)
    ;; enter("greet", none): a fresh step comes back as none, so run its body (here:
    ;; nothing) and record the payload; a replay gets the payload back instead.
    (call $enter (i32.const 16) (i32.const 5) (i32.const 0) (i32.const 0) (i32.const 0)
      (i32.const 256))
    (if (i32.eqz (i32.load8_u (i32.const 256)))
      (then (call $exit (i32.const 32) (i32.const 16))))
    (i32.store8 (i32.const 512) (i32.const 0))
    (i32.store (i32.const 516) (i32.const 32))
    (i32.store (i32.const 520) (i32.const 16))
    (i32.const 512)))
