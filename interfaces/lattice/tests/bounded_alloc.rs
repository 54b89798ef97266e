//! Length prefixes claiming gigabytes are refused before anything that size is allocated: a
//! counting allocator records the largest single allocation while the decoders read hostile
//! frames (its own test binary, so no other test's allocations count).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use trellis_lattice::http::{HttpRequest, HttpResponse};
use trellis_lattice::value::{decode_results, FunctionSignature, ValueType};

struct Counting;

static LARGEST: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only records sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST.fetch_max(layout.size(), Ordering::Relaxed);
        // SAFETY: same layout, as the caller promised for `alloc`.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST.fetch_max(new_size, Ordering::Relaxed);
        // SAFETY: forwarded as given.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// LEB128 of 4 GiB - 1, the largest length a u32 prefix can claim.
const FOUR_GIB: [u8; 5] = [0xff, 0xff, 0xff, 0xff, 0x0f];

fn results(ty: ValueType) -> FunctionSignature {
    FunctionSignature {
        instance: String::new(),
        name: "f".into(),
        params: vec![],
        results: vec![ty],
    }
}

#[test]
fn four_gib_length_prefixes_allocate_nothing_that_size() {
    let list = |element| ValueType::List {
        element: Box::new(element),
    };
    let types = [
        ValueType::String,
        list(ValueType::U8),
        list(ValueType::Tuple { types: vec![] }),
        list(list(ValueType::String)),
    ];
    let mut frame = FOUR_GIB.to_vec();
    frame.extend_from_slice(&[0u8; 64]);
    LARGEST.store(0, Ordering::Relaxed);
    for ty in types {
        let err = decode_results(&results(ty.clone()), &frame).expect_err("refused");
        assert!(!err.message.is_empty(), "{ty:?}");
    }
    let http = Bytes::from(frame);
    assert!(HttpRequest::decode_partial(&http).is_err());
    assert!(HttpResponse::decode(&http).is_err());
    let largest = LARGEST.load(Ordering::Relaxed);
    assert!(largest < 1 << 20, "an allocation of {largest} bytes");
}
