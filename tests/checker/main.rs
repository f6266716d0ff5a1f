//! Tier 1, the checker: everything that runs without an agent — the loader,
//! the schema, the rules and their catalog, the plan and `place()`, the
//! validate corpus with its snapshots, the layering of `src/`, and the CLI's
//! offline commands (`validate` of files and trees, `explain`, `rules`,
//! `matrix`, `simulate`, `plan` of a directory, `up --init-only`). No agent processes, no root, no network
//! beyond an unused loopback port. Fast: run it first.
//!
//! A test that starts an agent goes in `tests/live/`; one that needs root
//! (network namespaces, loop devices) in `tests/root/`.
//!
//! Run: `cargo test --test checker [filter]`. Snapshots live in
//! `snapshots/` beside this file, named `checker__<module>__<name>.snap`.

mod cli;
mod cli_conventions;
mod cli_sarif;
mod editor;
mod layers;
mod load_props;
mod place_props;
mod place_scenarios;
mod plan_diff;
mod plan_saved;
mod rules_across_groups;
mod rules_catalog;
mod rules_examples;
mod rules_exec_limits;
mod rules_matrix;
mod schema;
mod simulate;
mod validate_corpus;
mod validate_parallel;
mod validate_tree;
