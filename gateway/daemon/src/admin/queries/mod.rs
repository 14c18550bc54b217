//! What the admin web application makes of the store's reads: the shaping
//! that belongs to a page or an endpoint (tiles, percentiles, rates) rather
//! than to storage. The store answers row-level questions through its read
//! API ([`gateway_store::Reader`]); these modules turn the answers into the
//! JSON the dashboard shows.

pub mod stats;
