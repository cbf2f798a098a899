//! How the webhook journal keeps delivery bodies small: each body LZ4-compressed on the
//! caller's thread ([`bodies`]), against an earlier body of its family when one is kept as
//! that family's dictionary ([`dictionaries`]). ADR 0008 and 0009.

pub(super) mod bodies;
pub(super) mod dictionaries;
