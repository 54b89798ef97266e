//! The claim inside a wasm binary (a core module or a component): a custom section named
//! [`SECTION_NAME`], and the sha256 of the binary with that section left out.
//!
//! A small walker over the top-level sections: each is an id byte, a LEB128 size and that
//! many bytes, and every size is checked against what is left of the input, so a hostile
//! binary cannot make it read past its end or allocate.

use std::ops::Range;

use sha2::{Digest as _, Sha256};

use crate::error::Error;

/// The name of the wasm custom section holding a component's claim.
pub const SECTION_NAME: &str = "trellis-claims";

const MAGIC: &[u8; 4] = b"\0asm";
const HEADER_LEN: usize = 8;
const CUSTOM: u8 = 0;

/// Whether `bytes` start like a wasm binary (module or component).
pub fn is_wasm(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC) && bytes.len() >= HEADER_LEN
}

/// One top-level section: where it sits, and for a claims section, where its token is.
struct Section {
    whole: Range<usize>,
    claim: Option<Range<usize>>,
}

fn leb128_u32(bytes: &[u8], pos: &mut usize) -> Result<u32, Error> {
    let mut value: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *bytes.get(*pos).ok_or(Error::Malformed(
            "a section runs past the end of the binary",
        ))?;
        *pos += 1;
        value |= u32::from(byte & 0x7f)
            .checked_shl(shift)
            .ok_or(Error::Malformed("a section size is too large"))?;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(Error::Malformed("a section size is too large"))
}

fn sections(bytes: &[u8]) -> Result<Vec<Section>, Error> {
    if !is_wasm(bytes) {
        return Err(Error::Malformed("not a wasm binary"));
    }
    let mut out = Vec::new();
    let mut pos = HEADER_LEN;
    while pos < bytes.len() {
        let start = pos;
        let id = bytes[pos];
        pos += 1;
        let size = leb128_u32(bytes, &mut pos)? as usize;
        let end = pos
            .checked_add(size)
            .filter(|end| *end <= bytes.len())
            .ok_or(Error::Malformed(
                "a section runs past the end of the binary",
            ))?;
        let mut claim = None;
        if id == CUSTOM {
            let mut p = pos;
            let name_len = leb128_u32(&bytes[..end], &mut p)? as usize;
            let name_end = p
                .checked_add(name_len)
                .filter(|e| *e <= end)
                .ok_or(Error::Malformed("a custom section's name runs past it"))?;
            if &bytes[p..name_end] == SECTION_NAME.as_bytes() {
                claim = Some(name_end..end);
            }
        }
        out.push(Section {
            whole: start..end,
            claim,
        });
        pos = end;
    }
    Ok(out)
}

/// The claim token in `bytes` (`None` when unsigned) and the sha256 (hex) of `bytes` with
/// the claims section left out. More than one claims section is refused: which would count?
pub fn split(bytes: &[u8]) -> Result<(Option<&str>, String), Error> {
    let sections = sections(bytes)?;
    let mut hasher = Sha256::new();
    hasher.update(&bytes[..HEADER_LEN]);
    let mut token = None;
    for section in &sections {
        match &section.claim {
            Some(range) => {
                if token.is_some() {
                    return Err(Error::Malformed("more than one claims section"));
                }
                let text = std::str::from_utf8(&bytes[range.clone()])
                    .map_err(|_| Error::Malformed("the claim is not text"))?;
                token = Some(text);
            }
            None => hasher.update(&bytes[section.whole.clone()]),
        }
    }
    Ok((token, hex::encode(hasher.finalize())))
}

/// The sha256 (hex) of `bytes` with any claims section left out: what a claim signs.
pub fn hash_without_claim(bytes: &[u8]) -> Result<String, Error> {
    split(bytes).map(|(_, hash)| hash)
}

/// `bytes` without its claims section(s).
pub fn strip(bytes: &[u8]) -> Result<Vec<u8>, Error> {
    let sections = sections(bytes)?;
    let mut out = Vec::with_capacity(bytes.len());
    out.extend_from_slice(&bytes[..HEADER_LEN]);
    for section in sections.iter().filter(|s| s.claim.is_none()) {
        out.extend_from_slice(&bytes[section.whole.clone()]);
    }
    Ok(out)
}

fn push_leb128(out: &mut Vec<u8>, mut value: usize) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// `stripped` (a binary without a claims section) with `token` appended as one.
pub fn append(stripped: &[u8], token: &str) -> Vec<u8> {
    let mut payload = Vec::with_capacity(token.len() + SECTION_NAME.len() + 5);
    push_leb128(&mut payload, SECTION_NAME.len());
    payload.extend_from_slice(SECTION_NAME.as_bytes());
    payload.extend_from_slice(token.as_bytes());
    let mut out = Vec::with_capacity(stripped.len() + payload.len() + 6);
    out.extend_from_slice(stripped);
    out.push(CUSTOM);
    push_leb128(&mut out, payload.len());
    out.extend_from_slice(&payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A component header with one (empty-bodied) custom section named "x".
    fn component() -> Vec<u8> {
        let mut b = b"\0asm\x0d\x00\x01\x00".to_vec();
        b.extend_from_slice(&[0, 4, 1, b'x', 1, 2]);
        b
    }

    #[test]
    fn appended_claims_are_found_and_left_out_of_the_hash() {
        let plain = component();
        let (token, hash) = split(&plain).unwrap();
        assert!(token.is_none());
        let signed = append(&plain, "a.b.c");
        let (token, signed_hash) = split(&signed).unwrap();
        assert_eq!(token, Some("a.b.c"));
        assert_eq!(signed_hash, hash);
        assert_eq!(strip(&signed).unwrap(), plain);
        assert!(Error::Unsigned.to_string().contains(SECTION_NAME));
        let twice = append(&signed, "d.e.f");
        assert!(matches!(split(&twice), Err(Error::Malformed(_))));
    }

    #[test]
    fn truncated_or_foreign_bytes_are_malformed() {
        let mut b = component();
        b.truncate(b.len() - 1);
        assert!(matches!(split(&b), Err(Error::Malformed(_))));
        assert!(matches!(split(b"#!/bin/sh\n"), Err(Error::Malformed(_))));
        // A size that claims 4 GiB in an 8-byte input.
        let mut huge = component()[..8].to_vec();
        huge.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert!(matches!(split(&huge), Err(Error::Malformed(_))));
        let mut endless = component()[..8].to_vec();
        endless.extend_from_slice(&[1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(split(&endless), Err(Error::Malformed(_))));
    }
}
