//! `shout(s)`: calls `upper` from whichever component its link names, and adds "!".

wit_bindgen::generate!({ path: "../text-wit", world: "shout" });

struct Shout;

impl Guest for Shout {
    fn shout(s: String) -> String {
        format!("{}!", trellis::examples::text::upper(&s))
    }
}

export!(Shout);
