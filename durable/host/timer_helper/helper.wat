;; subscribe(d) forwards to wasmtime's own subscribe-duration: the host cannot make a
;; pollable through the C API, so it calls this (with d = 0) and passes the result on.
(module
  (import "wasi:clocks/monotonic-clock@0.2.9" "subscribe-duration"
    (func $subscribe (param i64) (result i32)))
  (func (export "subscribe") (param i64) (result i32)
    local.get 0
    call $subscribe))
