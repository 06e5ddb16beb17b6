//! Tables for people, JSON for programs; colour only on a terminal.

use std::io::{IsTerminal, Write};

/// Exit status of a process whose stdout was closed under it, as a shell
/// reports one killed by SIGPIPE (`polysync catalog | head -1`).
pub const EXIT_BROKEN_PIPE: i32 = 141;

/// Write to stdout; a closed pipe ends the process quietly with
/// [`EXIT_BROKEN_PIPE`] instead of a panic.
pub fn emit(text: &str) {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(EXIT_BROKEN_PIPE);
    }
}

use serde::Serialize;

#[derive(Debug, Clone, Copy)]
pub struct Out {
    pub json: bool,
    pub quiet: bool,
    /// Print secret-looking parameter values as they are.
    pub show_secrets: bool,
    color: bool,
}

impl Out {
    pub fn new(json: bool, quiet: bool) -> Self {
        let color = !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        Self { json, quiet, show_secrets: false, color }
    }

    /// Print a value as JSON (always, in JSON mode).
    pub fn json<T: Serialize>(&self, value: &T) {
        emit(&format!("{}\n", serde_json::to_string_pretty(value).unwrap_or_default()));
    }

    /// A line for people (not in JSON or quiet mode).
    pub fn say(&self, text: impl std::fmt::Display) {
        if !self.json && !self.quiet {
            emit(&format!("{text}\n"));
        }
    }

    /// A state word, coloured on a terminal.
    pub fn state(&self, state: &str) -> String {
        if !self.color {
            return state.to_owned();
        }
        let code = match state {
            "Success" => "32",
            "Failed" | "SubmitFailed" => "31",
            "Cancelled" => "33",
            "Running" | "Starting" | "Submitting" => "36",
            _ => return state.to_owned(),
        };
        format!("\x1b[{code}m{state}\x1b[0m")
    }

    /// An aligned table (people mode only).
    pub fn table(&self, headers: &[&str], rows: &[Vec<String>]) {
        if self.json || self.quiet {
            return;
        }
        let visible = |s: &str| {
            let mut n = 0;
            let mut in_escape = false;
            for c in s.chars() {
                match (in_escape, c) {
                    (false, '\x1b') => in_escape = true,
                    (true, 'm') => in_escape = false,
                    (false, _) => n += 1,
                    _ => {}
                }
            }
            n
        };
        let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
        for row in rows {
            for (i, cell) in row.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(visible(cell));
                }
            }
        }
        let line = |cells: Vec<String>| {
            let mut out = String::new();
            for (i, cell) in cells.iter().enumerate() {
                out.push_str(cell);
                if i + 1 < cells.len() {
                    out.push_str(&" ".repeat(widths[i] - visible(cell) + 2));
                }
            }
            emit(&format!("{}\n", out.trim_end()));
        };
        line(headers.iter().map(|h| (*h).to_owned()).collect());
        for row in rows {
            line(row.clone());
        }
    }
}
