//! The protobuf wire format, written straight into a byte buffer: just what OTLP's messages
//! use (varints, 64-bit fixed, 32-bit fixed, length-delimited fields).

pub(crate) const VARINT: u32 = 0;
pub(crate) const FIXED64: u32 = 1;
pub(crate) const LEN: u32 = 2;
pub(crate) const FIXED32: u32 = 5;

pub(crate) fn varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn varint_len(value: u64) -> usize {
    // 7 bits per byte; 0 still takes one.
    (64 - (value | 1).leading_zeros() as usize).div_ceil(7)
}

pub(crate) fn key(buf: &mut Vec<u8>, field: u32, wire_type: u32) {
    varint(buf, u64::from(field << 3 | wire_type));
}

/// A varint field, left out when zero (proto3's default).
pub(crate) fn uint(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, VARINT);
        varint(buf, value);
    }
}

pub(crate) fn fixed64(buf: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        key(buf, field, FIXED64);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

pub(crate) fn fixed32(buf: &mut Vec<u8>, field: u32, value: u32) {
    if value != 0 {
        key(buf, field, FIXED32);
        buf.extend_from_slice(&value.to_le_bytes());
    }
}

pub(crate) fn double(buf: &mut Vec<u8>, field: u32, value: f64) {
    key(buf, field, FIXED64);
    buf.extend_from_slice(&value.to_le_bytes());
}

/// A `bytes` or `string` field, left out when empty.
pub(crate) fn bytes(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    if !value.is_empty() {
        bytes_always(buf, field, value);
    }
}

/// A `bytes` or `string` field written even when empty (a member of a `oneof`).
pub(crate) fn bytes_always(buf: &mut Vec<u8>, field: u32, value: &[u8]) {
    key(buf, field, LEN);
    varint(buf, value.len() as u64);
    buf.extend_from_slice(value);
}

/// A nested message, written by `body` in place. Its length goes in front of it once known:
/// one byte is kept for it, enough for most (under 128 bytes); a longer body is moved up by
/// the bytes its length needs beyond that one.
pub(crate) fn message(buf: &mut Vec<u8>, field: u32, body: impl FnOnce(&mut Vec<u8>)) {
    key(buf, field, LEN);
    let at = buf.len();
    buf.push(0);
    body(buf);
    let len = buf.len() - at - 1;
    let need = varint_len(len as u64);
    if need > 1 {
        buf.splice(at + 1..at + 1, std::iter::repeat_n(0, need - 1));
    }
    let mut prefix = Vec::with_capacity(need);
    varint(&mut prefix, len as u64);
    buf[at..at + need].copy_from_slice(&prefix);
}

#[cfg(test)]
mod tests {
    use crate::otlp::wire::*;

    #[test]
    fn varints_are_minimal_and_little_endian_groups() {
        for (value, expected) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 0x01]),
            (300, vec![0xac, 0x02]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut buf = Vec::new();
            varint(&mut buf, value);
            assert_eq!(buf, expected, "{value}");
            assert_eq!(varint_len(value), expected.len(), "{value}");
        }
    }

    #[test]
    fn a_nested_message_gets_its_exact_length_at_every_size() {
        for len in [0usize, 1, 127, 128, 16_383, 16_384, 70_000] {
            let mut buf = vec![0xAA];
            message(&mut buf, 3, |b| b.extend(std::iter::repeat_n(7u8, len)));
            let mut expected = vec![0xAA, 3 << 3 | LEN as u8];
            varint(&mut expected, len as u64);
            expected.extend(std::iter::repeat_n(7u8, len));
            assert_eq!(buf, expected, "body of {len} bytes");
        }
    }
}
