//! Generated wRPC bindings of `trellis:messaging@0.1.0` (vendored in
//! `interfaces/wit/messaging`): the provider exports `producer` and calls the
//! `incoming-handler` its subscribed components export.

wit_bindgen_wrpc::generate!({
    inline: "
        package trellis:messaging-provider;

        world provider {
            export trellis:messaging/producer@0.1.0;
            import trellis:messaging/incoming-handler@0.1.0;
        }
    ",
    path: "../../interfaces/wit/messaging",
    world: "trellis:messaging-provider/provider",
    generate_all,
});

pub use trellis::messaging::types::{Error, Message};
