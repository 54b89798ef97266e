//! Generated wRPC bindings of the `wasi:keyvalue@0.2.0-draft` interfaces the providers
//! export, from the vendored WIT in `interfaces/wit/keyvalue`.

wit_bindgen_wrpc::generate!({
    inline: "
        package trellis:keyvalue-provider;

        world provider {
            export wasi:keyvalue/store@0.2.0-draft;
            export wasi:keyvalue/atomics@0.2.0-draft;
            export wasi:keyvalue/batch@0.2.0-draft;
        }
    ",
    path: "../../interfaces/wit/keyvalue",
    world: "trellis:keyvalue-provider/provider",
    generate_all,
});
