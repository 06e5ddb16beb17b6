//! The command-line interface: arguments, command handlers, output, demo.

pub mod args;
pub mod commands;
pub mod demo;
pub mod output;
pub mod render;
