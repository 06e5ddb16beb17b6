//! A tiny shell for simulated containers.
//!
//! A container's `command` + `args` run as: `sh -c SCRIPT` (also `bash`,
//! `/bin/sh`, ...), or a single builtin command, or — for anything else —
//! success with no output, as if the image did its work quietly. Kubernetes'
//! own `$(VAR)` expansion in `command`/`args` is applied first.
//!
//! The script language: commands joined by `;`, newlines, `&&` and `||`;
//! single and double quotes; `$VAR`, `${VAR}`, `${VAR:-default}` and `$?`;
//! builtins `echo` (`-n`, `-e`), `printf` (`%s`, `%d`, `\n`), `sleep`,
//! `exit`, `true`, `false`, `test` / `[`, `env`, `printenv`, `date` and `VAR=value` /
//! `export VAR=value`. `> /dev/null` silences a command; `> FILE` and
//! `>> FILE` write its output to a file of the container (the kubelet reads
//! `/dev/termination-log` back as the termination message); `>&2` and `2>&1`
//! are accepted (stderr goes to the log too). Unknown commands succeed
//! silently.

use std::collections::BTreeMap;
use std::time::Duration;

/// Where a command's output goes.
pub trait Output {
    fn line(&mut self, text: String);

    /// `cmd > FILE` / `cmd >> FILE`: the container's files (what a kubelet
    /// reads back is the termination message). Dropped by default.
    fn write_file(&mut self, path: &str, text: &str, append: bool) {
        let _ = (path, text, append);
    }

    /// The command used up the memory it may use (`tail /dev/zero`, the
    /// classic way to do it): the kernel's OOM killer ends the container
    /// with SIGKILL (exit 137) and the kubelet says `OOMKilled`.
    fn out_of_memory(&mut self) {}
}

/// Sleeps in simulated time.
pub trait Sleeper {
    fn sleep(&self, simulated: Duration) -> impl std::future::Future<Output = ()> + Send;
}

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// Text that undergoes `$` expansion.
    Expand(String),
    /// Single-quoted text, taken as is.
    Literal(String),
}

type Word = Vec<Piece>;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Join {
    Always,
    And,
    Or,
}

/// Split a script into (how it joins the previous command, words).
#[allow(unused_assignments)] // the macros' last expansion resets state nobody reads
fn parse(script: &str) -> Vec<(Join, Vec<Word>)> {
    let mut commands = Vec::new();
    let mut words: Vec<Word> = Vec::new();
    let mut word: Word = Vec::new();
    let mut plain = String::new();
    let mut join = Join::Always;
    let mut chars = script.chars().peekable();
    let mut in_word = false;
    macro_rules! end_plain {
        () => {
            if !plain.is_empty() {
                word.push(Piece::Expand(std::mem::take(&mut plain)));
            }
        };
    }
    macro_rules! end_word {
        () => {
            end_plain!();
            if in_word {
                words.push(std::mem::take(&mut word));
                in_word = false;
            }
        };
    }
    macro_rules! end_command {
        ($next:expr) => {
            end_word!();
            if !words.is_empty() {
                commands.push((join, std::mem::take(&mut words)));
            }
            join = $next;
        };
    }
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                end_plain!();
                in_word = true;
                let mut lit = String::new();
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    lit.push(c);
                }
                word.push(Piece::Literal(lit));
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(&n) = chars.peek()
                                && matches!(n, '"' | '\\' | '$' | '`')
                            {
                                plain.push(if n == '$' { '\u{0}' } else { n });
                                chars.next();
                                continue;
                            }
                            plain.push('\\');
                        }
                        _ => plain.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(n) = chars.next()
                    && n != '\n'
                {
                    plain.push(if n == '$' { '\u{0}' } else { n });
                }
            }
            ';' | '\n' => {
                end_command!(Join::Always);
            }
            '&' if chars.peek() == Some(&'&') => {
                chars.next();
                end_command!(Join::And);
            }
            '|' if chars.peek() == Some(&'|') => {
                chars.next();
                end_command!(Join::Or);
            }
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                end_command!(Join::Always);
            }
            c if c.is_whitespace() => {
                end_word!();
            }
            c => {
                in_word = true;
                plain.push(c);
            }
        }
    }
    end_command!(Join::Always);
    commands
}

/// `$VAR`, `${VAR}`, `${VAR:-default}`, `$?`; `\0` marks an escaped `$`.
fn expand(text: &str, env: &BTreeMap<String, String>, status: i32) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{0}' {
            out.push('$');
            continue;
        }
        if c != '$' {
            out.push(c);
            continue;
        }
        match chars.peek().copied() {
            Some('?') => {
                chars.next();
                out.push_str(&status.to_string());
            }
            Some('{') => {
                chars.next();
                let inner: String = chars.by_ref().take_while(|c| *c != '}').collect();
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner.as_str(), None),
                };
                match (env.get(name).filter(|v| !v.is_empty()), default) {
                    (Some(v), _) => out.push_str(v),
                    (None, Some(d)) => out.push_str(&expand(d, env, status)),
                    (None, None) => {}
                }
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_ascii_alphanumeric() || c == '_' {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                out.push_str(env.get(&name).map(String::as_str).unwrap_or_default());
            }
            _ => out.push('$'),
        }
    }
    out
}

fn render(word: &Word, env: &BTreeMap<String, String>, status: i32) -> String {
    word.iter()
        .map(|p| match p {
            Piece::Expand(t) => expand(t, env, status),
            Piece::Literal(t) => t.clone(),
        })
        .collect()
}

/// Kubernetes' `$(VAR)` expansion of `command`/`args` (`$$(VAR)` escapes).
pub fn kube_expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(inner) = after.strip_prefix('(') {
            match inner.find(')') {
                Some(end) if env.contains_key(&inner[..end]) => {
                    out.push_str(&env[&inner[..end]]);
                    rest = &inner[end + 1..];
                }
                Some(end) => {
                    out.push_str(&rest[i..i + 2 + end + 1]);
                    rest = &inner[end + 1..];
                }
                None => {
                    out.push_str(&rest[i..]);
                    rest = "";
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn unescape(s: &str) -> String {
    s.replace("\\n", "\n").replace("\\t", "\t")
}

fn emit(out: &mut impl Output, text: &str, newline: bool) {
    let mut text = text.to_owned();
    if newline {
        text.push('\n');
    }
    for line in text.split_inclusive('\n') {
        out.line(line.to_owned());
    }
}

fn parse_duration(arg: &str) -> Option<Duration> {
    let (num, unit) = match arg.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => (&arg[..i], &arg[i..]),
        None => (arg, "s"),
    };
    let n: f64 = num.parse().ok().filter(|n: &f64| n.is_finite() && *n >= 0.0)?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        "d" => n * 86400.0,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// `test` / `[`: `-n S`, `-z S`, `S`, `A = B`, `A != B`, and the integer
/// comparisons `-eq -ne -lt -le -gt -ge`; `!` negates.
fn test(args: &[String]) -> bool {
    if let Some((first, rest)) = args.split_first()
        && first == "!"
    {
        return !test(rest);
    }
    let int = |s: &str| s.trim().parse::<i64>().ok();
    match args {
        [] => false,
        [s] => !s.is_empty(),
        [op, s] if op == "-n" => !s.is_empty(),
        [op, s] if op == "-z" => s.is_empty(),
        [a, op, b] => match op.as_str() {
            "=" | "==" => a == b,
            "!=" => a != b,
            "-eq" | "-ne" | "-lt" | "-le" | "-gt" | "-ge" => match (int(a), int(b)) {
                (Some(x), Some(y)) => match op.as_str() {
                    "-eq" => x == y,
                    "-ne" => x != y,
                    "-lt" => x < y,
                    "-le" => x <= y,
                    "-gt" => x > y,
                    _ => x >= y,
                },
                _ => false,
            },
            _ => false,
        },
        _ => false,
    }
}

/// Run one simple command; `Err(code)` means `exit code`.
async fn builtin(
    words: &[String],
    env: &mut BTreeMap<String, String>,
    out: &mut impl Output,
    sleeper: &impl Sleeper,
) -> Result<i32, i32> {
    let Some(name) = words.first() else { return Ok(0) };
    let args = &words[1..];
    let base = name.rsplit('/').next().unwrap_or(name);
    match base {
        "echo" => {
            let (mut newline, mut escapes, mut rest) = (true, false, args);
            while let Some(flag) = rest.first().filter(|a| matches!(a.as_str(), "-n" | "-e" | "-ne" | "-en")) {
                newline &= !flag.contains('n');
                escapes |= flag.contains('e');
                rest = &rest[1..];
            }
            let text = rest.join(" ");
            emit(out, &if escapes { unescape(&text) } else { text }, newline);
            Ok(0)
        }
        "printf" => {
            let Some(format) = args.first() else { return Ok(1) };
            let mut values = args[1..].iter();
            let mut text = String::new();
            let fmt = unescape(format);
            let mut chars = fmt.chars().peekable();
            while let Some(c) = chars.next() {
                if c == '%' {
                    match chars.next() {
                        Some('s' | 'd') => text.push_str(values.next().map(String::as_str).unwrap_or_default()),
                        Some('%') => text.push('%'),
                        Some(other) => {
                            text.push('%');
                            text.push(other);
                        }
                        None => text.push('%'),
                    }
                } else {
                    text.push(c);
                }
            }
            emit(out, &text, false);
            Ok(0)
        }
        "sleep" => match args.first().and_then(|a| parse_duration(a)) {
            Some(d) => {
                sleeper.sleep(d).await;
                Ok(0)
            }
            None => {
                emit(
                    out,
                    &format!("sleep: invalid number '{}'", args.first().map(String::as_str).unwrap_or_default()),
                    true,
                );
                Ok(1)
            }
        },
        // Reads a line that never ends into memory, until the OOM killer.
        "tail" if args.iter().any(|a| a == "/dev/zero") => {
            out.out_of_memory();
            Err(137)
        }
        "exit" => Err(args.first().and_then(|a| a.parse::<i32>().ok()).map_or(0, |c| c.rem_euclid(256))),
        "true" | ":" => Ok(0),
        "false" => Ok(1),
        "test" | "[" => {
            let args = if base == "[" {
                match args.split_last() {
                    Some((last, rest)) if last == "]" => rest,
                    _ => return Ok(2),
                }
            } else {
                args
            };
            Ok(if test(args) { 0 } else { 1 })
        }
        "env" | "printenv" if args.is_empty() => {
            for (k, v) in env.iter() {
                emit(out, &format!("{k}={v}"), true);
            }
            Ok(0)
        }
        "printenv" => match env.get(&args[0]) {
            Some(v) => {
                emit(out, v, true);
                Ok(0)
            }
            None => Ok(1),
        },
        "date" => {
            let now = jiff::Timestamp::now();
            let text = match args.first().and_then(|a| a.strip_prefix('+')) {
                // GNU date's `+FORMAT`, with `%s` and `%N` (a script that
                // reports when it ended: `date +ENDED_AT=%s.%N`).
                Some(format) => {
                    let format = format
                        .replace("%s", &now.as_second().to_string())
                        .replace("%N", &format!("{:09}", now.subsec_nanosecond()));
                    now.strftime(&format).to_string()
                }
                None => now.strftime("%a %b %e %H:%M:%S UTC %Y").to_string(),
            };
            emit(out, &text, true);
            Ok(0)
        }
        "export" => {
            for a in args {
                if let Some((k, v)) = a.split_once('=') {
                    env.insert(k.to_owned(), v.to_owned());
                }
            }
            Ok(0)
        }
        _ => Ok(0),
    }
}

/// Run a script; returns the exit code.
pub async fn run_script(
    script: &str,
    env: &mut BTreeMap<String, String>,
    out: &mut impl Output,
    sleeper: &impl Sleeper,
) -> i32 {
    let mut status = 0;
    for (join, words) in parse(script) {
        let run = match join {
            Join::Always => true,
            Join::And => status == 0,
            Join::Or => status != 0,
        };
        if !run {
            continue;
        }
        // Redirections: `> /dev/null` silences; `>&2`, `2>&1`, `1>&2` are no-ops.
        let mut rendered: Vec<String> = Vec::new();
        let mut silent = false;
        let mut file: Option<(String, bool)> = None;
        let expanded: Vec<String> = words.iter().map(|w| render(w, env, status)).collect();
        let mut iter = expanded.into_iter();
        while let Some(w) = iter.next() {
            let (op, target) = match w.as_str() {
                ">&2" | "2>&1" | "1>&2" => continue,
                ">" | "1>" | "2>" | ">>" | "1>>" | "2>>" => (w.clone(), iter.next().unwrap_or_default()),
                w if w.starts_with("2>") => continue,
                w if w.starts_with(">>") || w.starts_with("1>>") => {
                    let i = w.find(">>").expect("checked") + 2;
                    (w[..i].to_owned(), w[i..].to_owned())
                }
                w if w.starts_with('>') || w.starts_with("1>") => {
                    let i = w.find('>').expect("checked") + 1;
                    (w[..i].to_owned(), w[i..].to_owned())
                }
                _ => {
                    rendered.push(w);
                    continue;
                }
            };
            if op.starts_with('2')
                || matches!(target.as_str(), "/dev/stdout" | "/dev/stderr" | "/dev/fd/1" | "/dev/fd/2")
            {
                continue;
            }
            if target == "/dev/null" {
                silent = true;
            } else if !target.is_empty() {
                file = Some((target, op.ends_with(">>")));
            }
        }
        // Leading assignments.
        while rendered.first().is_some_and(|w| {
            w.split_once('=')
                .is_some_and(|(k, _)| !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        }) {
            let w = rendered.remove(0);
            let (k, v) = w.split_once('=').expect("checked");
            env.insert(k.to_owned(), v.to_owned());
        }
        let mut sink = Silent;
        let mut capture = Capture(String::new());
        let result = if silent {
            Box::pin(builtin(&rendered, env, &mut sink, sleeper)).await
        } else if file.is_some() {
            Box::pin(builtin(&rendered, env, &mut capture, sleeper)).await
        } else {
            Box::pin(builtin(&rendered, env, out, sleeper)).await
        };
        if let (Some((path, append)), false) = (&file, silent) {
            out.write_file(path, &capture.0, *append);
        }
        match result {
            Ok(code) => status = code,
            Err(code) => return code,
        }
    }
    status
}

struct Silent;

impl Output for Silent {
    fn line(&mut self, _: String) {}
}

/// What a command redirected to a file printed.
struct Capture(String);

impl Output for Capture {
    fn line(&mut self, text: String) {
        self.0.push_str(&text);
    }
}

/// Run a container's `command` + `args`; returns the exit code.
pub async fn run_container(
    command: &[String],
    args: &[String],
    env: &mut BTreeMap<String, String>,
    out: &mut impl Output,
    sleeper: &impl Sleeper,
) -> i32 {
    let argv: Vec<String> = command.iter().chain(args).map(|a| kube_expand(a, env)).collect();
    let Some(first) = argv.first() else { return 0 };
    let base = first.rsplit('/').next().unwrap_or(first);
    if matches!(base, "sh" | "bash" | "ash" | "dash" | "zsh") {
        return match argv.iter().position(|a| a == "-c" || a == "-ec" || a == "-ce") {
            Some(i) => run_script(argv.get(i + 1).map(String::as_str).unwrap_or_default(), env, out, sleeper).await,
            None => 0,
        };
    }
    match builtin(&argv, env, out, sleeper).await {
        Ok(code) | Err(code) => code,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Lines(Vec<String>, BTreeMap<String, String>);
    impl Output for Lines {
        fn line(&mut self, text: String) {
            self.0.push(text);
        }
        fn write_file(&mut self, path: &str, text: &str, append: bool) {
            let file = self.1.entry(path.to_owned()).or_default();
            if !append {
                file.clear();
            }
            file.push_str(text);
        }
    }
    struct NoSleep(std::sync::Mutex<Duration>);
    impl Sleeper for NoSleep {
        async fn sleep(&self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    fn run(command: &[&str], env: &[(&str, &str)]) -> (i32, Vec<String>, Duration) {
        let mut env: BTreeMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let mut out = Lines(Vec::new(), BTreeMap::new());
        let sleeper = NoSleep(Default::default());
        let cmd: Vec<String> = command.iter().map(|s| (*s).to_owned()).collect();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let code = rt.block_on(run_container(&cmd, &[], &mut env, &mut out, &sleeper));
        let slept = *sleeper.0.lock().unwrap();
        (code, out.0, slept)
    }

    #[test]
    fn echo_with_env_and_operators() {
        let (code, out, slept) = run(
            &[
                "sh",
                "-c",
                "echo \"hello $GREETING\" && sleep 2; echo '${NOPE}' ${MISSING:-fallback}; exit 3; echo never",
            ],
            &[("GREETING", "world")],
        );
        assert_eq!(code, 3);
        assert_eq!(out, ["hello world\n", "${NOPE} fallback\n"]);
        assert_eq!(slept, Duration::from_secs(2));
    }

    #[test]
    fn test_brackets() {
        let (code, out, _) = run(
            &["sh", "-c", "[ \"$I\" = 1 ] && echo one; [ $I -eq 2 ] || echo not-two; test -z \"$NOPE\" && exit 7"],
            &[("I", "1")],
        );
        assert_eq!((code, out), (7, vec!["one\n".to_owned(), "not-two\n".to_owned()]));
    }

    #[test]
    fn date_takes_a_format_with_epoch_seconds_and_nanoseconds() {
        let (code, out, _) = run(&["date", "+ENDED_AT=%s.%N"], &[]);
        let ended: f64 = out[0].trim().strip_prefix("ENDED_AT=").unwrap().parse().unwrap();
        let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
        assert!(code == 0 && (now - ended).abs() < 5.0 && out[0].contains('.'), "{out:?}");
    }

    #[test]
    fn or_and_status() {
        let (code, out, _) = run(&["sh", "-c", "false || echo recovered; false && echo no; echo $?"], &[]);
        assert_eq!(code, 0);
        assert_eq!(out, ["recovered\n", "1\n"]);
    }

    #[test]
    fn kubernetes_expansion_and_plain_commands() {
        let (code, out, _) = run(&["echo", "$(NAME)", "$$(NAME)", "$(UNSET)"], &[("NAME", "x")]);
        assert_eq!((code, out), (0, vec!["x $(NAME) $(UNSET)\n".to_owned()]));
        let (code, out, _) = run(&["/app/run-batch", "--fast"], &[]);
        assert_eq!((code, out.len()), (0, 0));
    }

    #[test]
    fn redirects_to_files() {
        let mut env = BTreeMap::new();
        let mut out = Lines(Vec::new(), BTreeMap::new());
        let sleeper = NoSleep(Default::default());
        let script = "echo ROWS=42 > /dev/termination-log; echo URL=x >>/dev/termination-log; echo seen; echo gone >/tmp/f; echo not-a-file 2> /tmp/err";
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let code = rt.block_on(run_script(script, &mut env, &mut out, &sleeper));
        assert_eq!(code, 0);
        assert_eq!(out.0, ["seen\n", "not-a-file\n"]);
        assert_eq!(out.1["/dev/termination-log"], "ROWS=42\nURL=x\n");
        assert_eq!(out.1["/tmp/f"], "gone\n");
    }

    #[test]
    fn redirects_assignments_and_printf() {
        let (code, out, _) =
            run(&["sh", "-c", "X=1; echo quiet > /dev/null; echo loud >&2; printf '%s-%s\\n' $X b"], &[]);
        assert_eq!(code, 0);
        assert_eq!(out, ["loud\n", "1-b\n"]);
    }
}
