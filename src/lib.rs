//! asctl: a high-availability cluster manager driven by configuration files.
//!
//! See ARCHITECTURE.md for the map. Data flows one way:
//! files → `load` (documents with spans) → `model` (typed config) →
//! `rules` (findings) → `diag` (rendering); `catalog` (what each rule is)
//! sits below `load`, `rules` and `diag`, which all name rules through it.

pub mod agent;
pub mod catalog;
pub mod clock;
pub mod diag;
pub mod domain;
pub mod drivers;
pub mod load;
pub mod model;
pub mod plan;
pub mod private;
pub mod rules;
pub mod wire;
