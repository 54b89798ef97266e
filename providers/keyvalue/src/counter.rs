//! How counters are stored: the decimal ASCII text of a `u64` (`b"42"`), with no sign,
//! padding or leading zeros. `get` returns exactly what `increment` wrote, `set(k, b"41")`
//! then `increment(k, 1)` gives 42, and Redis's `INCRBY` reads and writes the same form.

use bytes::Bytes;

use crate::Error;

/// The stored form of `value`.
pub fn encode(value: u64) -> Bytes {
    Bytes::from(value.to_string())
}

/// Reads a stored counter; anything but a canonical decimal `u64` is an error naming `key`.
pub fn decode(key: &str, stored: &[u8]) -> Result<u64, Error> {
    let canonical = !stored.is_empty()
        && stored.len() <= 20
        && stored.iter().all(u8::is_ascii_digit)
        && (stored.len() == 1 || stored[0] != b'0');
    let parsed = canonical
        .then(|| std::str::from_utf8(stored).ok()?.parse::<u64>().ok())
        .flatten();
    parsed.ok_or_else(|| {
        Error::Other(format!(
            "the value of key {key:?} is not a counter (atomics store counters as the decimal \
             text of an unsigned 64-bit number, e.g. \"42\"; found {})",
            describe(stored)
        ))
    })
}

/// `current + delta`, or an error when it does not fit in a `u64`.
pub fn add(key: &str, current: u64, delta: u64) -> Result<u64, Error> {
    current.checked_add(delta).ok_or_else(|| {
        Error::Other(format!(
            "incrementing key {key:?} ({current}) by {delta} overflows an unsigned 64-bit counter"
        ))
    })
}

fn describe(stored: &[u8]) -> String {
    const SHOWN: usize = 32;
    match std::str::from_utf8(stored) {
        Ok(s) if s.chars().count() <= SHOWN => format!("{s:?}"),
        Ok(s) => format!(
            "{:?}... ({} bytes)",
            s.chars().take(SHOWN).collect::<String>(),
            stored.len()
        ),
        Err(_) => format!("{} bytes of binary data", stored.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for v in [0, 1, 42, 1_000_000, u64::MAX] {
            assert_eq!(decode("k", &encode(v)).unwrap(), v);
        }
        assert_eq!(&encode(42)[..], b"42");
    }

    #[test]
    fn rejects_what_is_not_a_canonical_counter() {
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b" 1",
            b"1 ",
            b"007",
            b"1.5",
            b"abc",
            b"18446744073709551616",
            &[0xff, 0xfe],
        ] {
            let err = decode("hits", bad).unwrap_err();
            let Error::Other(msg) = err else { panic!() };
            assert!(msg.contains("\"hits\""), "{msg}");
        }
    }

    #[test]
    fn overflow_is_an_error() {
        assert_eq!(add("k", 1, 2).unwrap(), 3);
        assert!(add("k", u64::MAX, 1).is_err());
    }
}
