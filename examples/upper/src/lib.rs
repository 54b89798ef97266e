//! Exports `trellis:examples/text`: `upper(s)` in capitals.

wit_bindgen::generate!({ path: "../text-wit", world: "text-service" });

struct Upper;

impl exports::trellis::examples::text::Guest for Upper {
    fn upper(s: String) -> String {
        s.to_uppercase()
    }
}

export!(Upper);
