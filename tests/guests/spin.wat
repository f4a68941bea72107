;; A workflow whose start function never returns: instantiating it spins forever, before
;; `run` and so before any task is known. A whole component by hand (see loud.wat).
(component
  (import "durable:core/types@0.1.0" (instance $types
    (type (record (field "kind" string) (field "message" string) (field "traceback" string)))
    (export "workflow-error" (type (eq 0)))))
  (alias export $types "workflow-error" (type $workflow-error))
  (core module $main
    (memory (export "memory") 1)
    (data (i32.const 32) "\"spun\"")
    (func $spin (loop $forever (br $forever)))
    (start $spin)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (i32.const 1024))
    (func (export "run") (param i32 i32 i32 i32) (result i32)
      (i32.store8 (i32.const 512) (i32.const 0))
      (i32.store (i32.const 516) (i32.const 32))
      (i32.store (i32.const 520) (i32.const 6))
      (i32.const 512)))
  (core instance $main-instance (instantiate $main))
  (alias core export $main-instance "memory" (core memory $memory))
  (alias core export $main-instance "run" (core func $run-core))
  (alias core export $main-instance "cabi_realloc" (core func $realloc))
  (type $run-result (result string (error $workflow-error)))
  (func $run (param "entry" string) (param "input" string) (result $run-result)
    (canon lift (core func $run-core) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (export "run" (func $run)))
