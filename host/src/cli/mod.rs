//! The command-line interface: arguments, command handlers, output, demo.

pub mod args;
pub mod commands;
#[cfg(feature = "sandbox")]
pub mod demo;
pub mod output;
pub mod render;
