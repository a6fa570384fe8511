;; Conclave's native wasm ABI (docs/wasm.md): the sum of the devices' records, each a
;; little-endian i64, as an 8-byte little-endian output.
(module
  (import "conclave" "input_count" (func $count (result i32)))
  (import "conclave" "input" (func $input (param i32 i32)))
  (import "conclave" "output" (func $output (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "conclave_run") (result i32)
    (local $i i32) (local $n i32) (local $sum i64)
    (local.set $n (call $count))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        ;; Each record is copied to address 0 and read from there.
        (call $input (local.get $i) (i32.const 0))
        (local.set $sum (i64.add (local.get $sum) (i64.load (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i64.store (i32.const 64) (local.get $sum))
    (call $output (i32.const 64) (i32.const 8))
    (i32.const 0)))
