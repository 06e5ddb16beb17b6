//! The polysync host as a library: the `polysync` binary is a thin CLI over
//! it, and the cross-crate tests drive it directly.

pub mod plugins;
