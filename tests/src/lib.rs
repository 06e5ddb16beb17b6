//! Cross-crate tests live in `tests/`; benchmarks in `benches/`. This crate
//! has no code of its own.
