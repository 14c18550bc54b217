//! Input formats: the registry's table (`gateway_registry::formats`), under
//! the path the daemon's modules and commands use.

pub use gateway_registry::formats::*;
