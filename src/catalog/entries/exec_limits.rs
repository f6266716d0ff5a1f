//! A process too large for the kernel to exec (`rules::exec_limits`).

use crate::catalog::Origin::Asctl;

rules! {
    EXEC_LIMITS_FAMILY;
    EXEC_TOO_LARGE = {
        id: "AS0319",
        name: "exec-too-large",
        severity: Error,
        title: "a process's command, arguments and environment exceed what the kernel accepts in one exec",
        origin: Asctl,
        scope: Structural,
        fix: "pass large values in a file (give its path in the environment or the arguments) instead of in the value itself",
        explanation: "The kernel refuses to start a program (`E2BIG`, \"Argument list too long\") when one argument or environment string is longer than 128 KiB (`MAX_ARG_STRLEN` on Linux), or when all of them together — each with its terminating NUL and a pointer — exceed `ARG_MAX` (what `getconf ARG_MAX` prints: a quarter of the stack size limit, 2 MiB by default). Such a process validates and applies but can never start on any node, so `validate` reports it: each string over 128 KiB at the string, and a total over the limit at the process. The total counts `ASCTL_NODE` and `ASCTL_GROUP`, which the agent adds; the agent's own environment, which the process inherits, comes on top. The limit checked is the one of the machine `validate` runs on; a node whose stack limit is smaller refuses sooner, and its start error says so.",
    }
}
