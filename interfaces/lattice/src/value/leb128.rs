//! LEB128, as wRPC encodes every integer wider than 8 bits, lengths and discriminants.

pub(crate) fn write_unsigned(buf: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

pub(crate) fn write_signed(buf: &mut Vec<u8>, mut v: i64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && byte & 0x40 == 0) || (v == -1 && byte & 0x40 != 0);
        if done {
            buf.push(byte);
            return;
        }
        buf.push(byte | 0x80);
    }
}

/// Reads an unsigned LEB128 of at most `bits` bits.
pub(crate) fn read_unsigned(input: &mut &[u8], bits: u32) -> Option<u64> {
    let mut result: u64 = 0;
    let mut shift = 0u32;
    loop {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        if shift >= bits {
            return None;
        }
        result |= u64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            if bits < 64 && result >> bits != 0 {
                return None;
            }
            return Some(result);
        }
    }
}

/// Reads a signed LEB128 of at most `bits` bits.
pub(crate) fn read_signed(input: &mut &[u8], bits: u32) -> Option<i64> {
    let mut result: i64 = 0;
    let mut shift = 0u32;
    loop {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        if shift >= bits {
            return None;
        }
        result |= i64::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 {
            if shift < 64 && byte & 0x40 != 0 {
                result |= -1i64 << shift;
            }
            let min = -(1i128 << (bits - 1));
            let max = (1i128 << (bits - 1)) - 1;
            let wide = i128::from(result);
            if wide < min || wide > max {
                return None;
            }
            return Some(result);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings() {
        let mut b = Vec::new();
        write_unsigned(&mut b, 624_485);
        assert_eq!(b, [0xe5, 0x8e, 0x26]);
        b.clear();
        write_signed(&mut b, -123_456);
        assert_eq!(b, [0xc0, 0xbb, 0x78]);
        b.clear();
        write_signed(&mut b, 63);
        assert_eq!(b, [0x3f]);
        b.clear();
        write_signed(&mut b, 64);
        assert_eq!(b, [0xc0, 0x00]);
    }

    #[test]
    fn round_trips_and_bounds() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            write_unsigned(&mut b, v);
            assert_eq!(read_unsigned(&mut b.as_slice(), 64), Some(v));
        }
        for v in [
            0i64,
            -1,
            63,
            -64,
            64,
            -65,
            i32::MIN as i64,
            i64::MIN,
            i64::MAX,
        ] {
            let mut b = Vec::new();
            write_signed(&mut b, v);
            assert_eq!(read_signed(&mut b.as_slice(), 64), Some(v), "{v}");
        }
        let mut b = Vec::new();
        write_unsigned(&mut b, 70_000);
        assert_eq!(read_unsigned(&mut b.as_slice(), 16), None);
        assert_eq!(read_unsigned(&mut [0x80u8].as_slice(), 32), None);
    }
}
