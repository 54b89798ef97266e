//! The Trellis deployment manager (in progress).
