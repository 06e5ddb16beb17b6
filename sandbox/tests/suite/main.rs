//! The sandbox's integration tests, one binary: its HTTP API held to real
//! API-server behaviour, its controllers, and the real `kubectl` against it.
//! The helpers every part shares are in `common`.

mod api;
mod common;
mod controllers;
mod kubectl;
