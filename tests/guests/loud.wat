;; A workflow that prints while it is instantiated: its core module's start function
;; writes "made\n" to WASI stdout, before `run` and so before any task is known. `run`
;; returns "loud" and makes no durable call.
;;
;; A whole component by hand, not `wasm-tools component new`: that lowers a function
;; taking a list through a table it fills after the main module is instantiated, so a
;; start function calling it would trap. Here the memory comes from a module of its own,
;; instantiated first, and the write is lowered against it before the main module's
;; start function runs. Canonical ABI of
;;   [method]output-stream.blocking-write-and-flush(self, contents: list<u8>)
;;     -> result<_, stream-error>: handle, pointer, length and a return area.
(component
  (import "wasi:io/error@0.2.9" (instance $error-api
    (export "error" (type (sub resource)))))
  (alias export $error-api "error" (type $error))
  (import "wasi:io/streams@0.2.9" (instance $streams
    (export "output-stream" (type (sub resource)))
    (alias outer 1 $error (type))
    (export "error" (type (eq 1)))
    (type (own 2))
    (type (variant (case "last-operation-failed" 3) (case "closed")))
    (export "stream-error" (type (eq 4)))
    (type (borrow 0))
    (type (list u8))
    (type (result (error 5)))
    (type (func (param "self" 6) (param "contents" 7) (result 8)))
    (export "[method]output-stream.blocking-write-and-flush" (func (type 9)))))
  (alias export $streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdout@0.2.9" (instance $stdout-api
    (alias outer 1 $output-stream (type))
    (export "output-stream" (type (eq 0)))
    (type (own 1))
    (export "get-stdout" (func (result 2)))))
  (import "durable:core/types@0.1.0" (instance $types
    (type (record (field "kind" string) (field "message" string) (field "traceback" string)))
    (export "workflow-error" (type (eq 0)))))
  (alias export $types "workflow-error" (type $workflow-error))

  (core module $memory-module
    (memory (export "memory") 1))
  (core instance $memory-instance (instantiate $memory-module))
  (alias core export $memory-instance "memory" (core memory $memory))

  (alias export $stdout-api "get-stdout" (func $get-stdout))
  (core func $get-stdout-core (canon lower (func $get-stdout)))
  (alias export $streams "[method]output-stream.blocking-write-and-flush" (func $write))
  (core func $write-core (canon lower (func $write) (memory $memory)))
  (core func $drop-core (canon resource.drop $output-stream))
  (core instance $imports
    (export "memory" (memory $memory))
    (export "get-stdout" (func $get-stdout-core))
    (export "write" (func $write-core))
    (export "drop" (func $drop-core)))

  (core module $main
    (import "host" "memory" (memory 1))
    (import "host" "get-stdout" (func $stdout (result i32)))
    (import "host" "write" (func $write (param i32 i32 i32 i32)))
    (import "host" "drop" (func $drop (param i32)))
    (data (i32.const 16) "made\n")
    (data (i32.const 32) "\"loud\"")
    (func $made
      (local $out i32)
      (local.set $out (call $stdout))
      (call $write (local.get $out) (i32.const 16) (i32.const 5) (i32.const 64))
      (call $drop (local.get $out)))
    (start $made)
    (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32)
      (i32.const 1024))
    (func (export "run") (param i32 i32 i32 i32) (result i32)
      (i32.store8 (i32.const 512) (i32.const 0))
      (i32.store (i32.const 516) (i32.const 32))
      (i32.store (i32.const 520) (i32.const 6))
      (i32.const 512)))
  (core instance $main-instance (instantiate $main (with "host" (instance $imports))))

  (alias core export $main-instance "run" (core func $run-core))
  (alias core export $main-instance "cabi_realloc" (core func $realloc))
  (type $run-result (result string (error $workflow-error)))
  (func $run (param "entry" string) (param "input" string) (result $run-result)
    (canon lift (core func $run-core) (memory $memory) (realloc $realloc) string-encoding=utf8))
  (export "run" (func $run)))
