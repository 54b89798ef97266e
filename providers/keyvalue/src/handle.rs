//! Bucket handles: the UTF-8 bytes of the identifier given to `open`. They carry no state,
//! so any instance of any key-value provider can serve a method call on a bucket another
//! one opened (a link retargeted from NATS to Redis keeps working for open buckets).

use bytes::Bytes;
use wit_bindgen_wrpc::wrpc_transport::{ResourceBorrow, ResourceOwn};

use crate::bindings::exports::wasi::keyvalue::store::Bucket;

pub fn encode(identifier: &str) -> ResourceOwn<Bucket> {
    ResourceOwn::from(Bytes::copy_from_slice(identifier.as_bytes()))
}

pub fn decode(handle: ResourceBorrow<Bucket>) -> anyhow::Result<String> {
    let bytes = Bytes::from(handle);
    String::from_utf8(bytes.to_vec()).map_err(|_| {
        anyhow::anyhow!(
            "the bucket handle ({} bytes) was not issued by a Trellis key-value provider",
            bytes.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for id in ["", "cache", "a:b/ü"] {
            let own = encode(id);
            assert_eq!(decode(ResourceBorrow::from(own)).unwrap(), id);
        }
        assert!(decode(ResourceBorrow::from(vec![0xff])).is_err());
    }
}
