;; A component importing wasi:keyvalue/store and wasi:logging/logging but not
;; wasi:keyvalue/atomics, for the import checks of the manifest corpus. kv-client.wasm is this
;; file compiled; the corpus test checks that they match.
(component
  (import "wasi:keyvalue/store@0.2.0-draft" (instance))
  (import "wasi:logging/logging" (instance))
)
