//! What the kernel accepts in one `exec`: a process whose command,
//! arguments and environment exceed it can never start (`E2BIG`), however
//! often it is retried, so `validate` checks it and a start says so.
//!
//! Linux counts every argument and environment string with its NUL, plus
//! one pointer for each, against `ARG_MAX` (`sysconf(_SC_ARG_MAX)`, a
//! quarter of the stack size limit: 2 MiB by default), and refuses any
//! single string longer than `MAX_ARG_STRLEN` (32 pages, 128 KiB).

use super::Process;

/// The longest single argument or environment string Linux accepts, NUL
/// included (`MAX_ARG_STRLEN`).
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// The environment variables the agent adds to every process (their
/// values are the node's and the group's names).
pub const AGENT_ENV: [&str; 2] = ["ASCTL_NODE", "ASCTL_GROUP"];

/// `ARG_MAX` on this machine, or POSIX's minimum where it cannot be read.
pub fn arg_max() -> usize {
    // SAFETY: sysconf reads a limit; no memory is passed.
    let n = unsafe { libc::sysconf(libc::_SC_ARG_MAX) };
    usize::try_from(n).ok().filter(|n| *n > 0).unwrap_or(4096)
}

/// One string of an exec: where it comes from and its size with its NUL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecString<'a> {
    /// `command[index]`.
    Command(usize),
    /// The environment variable of that name.
    Env(&'a str),
}

/// The size of a process's exec as the kernel counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecSize<'a> {
    /// Every string with its NUL, plus a pointer per string.
    pub total: usize,
    /// The strings over [`MAX_ARG_STRLEN`], with their sizes.
    pub too_long: Vec<(ExecString<'a>, usize)>,
}

impl Process {
    /// The size of this process's exec, with `node` and `group` for the
    /// environment the agent adds. The agent's own environment, which the
    /// process inherits, comes on top.
    pub fn exec_size(&self, node: &str, group: &str) -> ExecSize<'_> {
        const POINTER: usize = std::mem::size_of::<usize>();
        let strings = self
            .command
            .iter()
            .enumerate()
            .map(|(i, arg)| (ExecString::Command(i), arg.len()))
            .chain(
                self.env
                    .iter()
                    .map(|(k, v)| (ExecString::Env(k.as_str()), k.len() + 1 + v.len())),
            )
            .chain(
                AGENT_ENV
                    .into_iter()
                    .zip([node, group])
                    .map(|(k, v)| (ExecString::Env(k), k.len() + 1 + v.len())),
            );
        let mut size = ExecSize {
            total: 0,
            too_long: Vec::new(),
        };
        for (what, len) in strings {
            let with_nul = len + 1;
            size.total += with_nul + POINTER;
            if with_nul > MAX_ARG_STRLEN {
                size.too_long.push((what, with_nul));
            }
        }
        size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(command: &[&str], env: &[(&str, String)]) -> Process {
        let json = serde_json::json!({
            "name": "p",
            "command": command,
            "env": env.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        });
        serde_json::from_value(json).expect("valid process")
    }

    #[test]
    fn strings_count_with_their_nul_and_a_pointer_each() {
        let p = process(&["ab", "c"], &[("K", "vv".into())]);
        let size = p.exec_size("n1", "g");
        // "ab\0" "c\0" "K=vv\0" "ASCTL_NODE=n1\0" "ASCTL_GROUP=g\0"
        let strings = 3 + 2 + 5 + 14 + 14;
        assert_eq!(size.total, strings + 5 * std::mem::size_of::<usize>());
        assert!(size.too_long.is_empty());
    }

    #[test]
    fn a_string_over_max_arg_strlen_is_named() {
        let at_limit = "x".repeat(MAX_ARG_STRLEN - 3); // "K=" + value + NUL
        let over = "x".repeat(MAX_ARG_STRLEN - 2);
        let p = process(&["true"], &[("K", at_limit), ("L", over)]);
        let size = p.exec_size("n", "g");
        assert_eq!(size.too_long, [(ExecString::Env("L"), MAX_ARG_STRLEN + 1)]);
    }

    #[test]
    fn arg_max_is_what_the_system_reports() {
        let out = std::process::Command::new("getconf")
            .arg("ARG_MAX")
            .output()
            .expect("getconf runs");
        let reported: usize = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("a number");
        assert_eq!(arg_max(), reported);
    }
}
