//! Which documents are validated together.
//!
//! A repository holds many domains, one directory each: the directory of a
//! file holding a `Domain` document roots that domain, and every file below
//! it, down to the next domain root, belongs to it. A file under no domain
//! root (or every file, with `--file-only`) is a unit of its own, checked
//! as far as a file alone can be: rules that conclude from what is *absent*
//! (no Domain, a dangling reference, a count of nodes) do not run there,
//! because the rest of the domain is simply not in the input.

use std::path::{Path, PathBuf};

use crate::diag::{DomainRef, FileId};
use crate::model::{Config, DocId, Kind};

pub use crate::diag::STDIN_NAME;

/// How files are grouped into units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Grouping {
    /// By domain root; files under none are checked alone.
    #[default]
    Domains,
    /// Every file alone (a pre-commit hook, an editor).
    FileOnly,
}

/// A set of documents validated together: one domain, or one file alone.
#[derive(Debug, Default)]
pub struct Unit {
    /// The domain, when the unit is one (None for a file checked alone).
    pub domain: Option<DomainRef>,
    pub files: Vec<FileId>,
    pub docs: Vec<DocId>,
    /// The typed objects of the unit's documents. `None` when the whole
    /// input is this one unit: then it is [`super::Loaded::config`].
    pub config: Option<Config>,
    /// Some document could not be read far enough to know its kind and
    /// name: rules about the whole unit (one Domain, dangling references)
    /// are not reported, since the missing object may be that one.
    pub incomplete: bool,
    /// Documents that declared a kind and name but failed the schema: they
    /// exist as far as references are concerned, but rules cannot judge
    /// them.
    pub invalid_names: Vec<(Kind, String)>,
}

impl Unit {
    /// A file (or files) checked alone: the rest of its domain is not here.
    pub fn alone(&self) -> bool {
        self.domain.is_none()
    }

    /// Whether an object of `kind` named `name` is declared, valid or not.
    pub fn declares(&self, config: &Config, kind: Kind, name: &str) -> bool {
        config.has(kind, name)
            || self
                .invalid_names
                .iter()
                .any(|(k, n)| *k == kind && n == name)
    }

    /// Some object of this unit was dropped (unreadable or failing the
    /// schema): rules that conclude from an absence cannot judge.
    pub fn dropped_any(&self) -> bool {
        self.incomplete || !self.invalid_names.is_empty()
    }
}

/// What the partition needs to know of one file.
pub(super) struct FileFacts<'a> {
    pub name: &'a str,
    /// Names of the Domain documents of the file (valid or not; `""` when
    /// the name is not readable).
    pub domains: Vec<String>,
}

/// The unit of every file, and the units (without configs yet).
pub(super) fn partition(files: &[FileFacts], grouping: Grouping) -> (Vec<usize>, Vec<Unit>) {
    let mut units: Vec<Unit> = Vec::new();
    let mut of_file = vec![usize::MAX; files.len()];
    if grouping == Grouping::Domains {
        // Roots, deepest first, so that the first ancestor found is the
        // nearest one.
        let mut roots: Vec<(PathBuf, usize)> = Vec::new();
        for (id, f) in files.iter().enumerate() {
            if f.domains.is_empty() {
                continue;
            }
            let Some(dir) = dir_of(f.name) else {
                // Standard input holding a Domain is a domain by itself.
                of_file[id] = units.len();
                units.push(domain_unit(f.name, &f.domains));
                continue;
            };
            match roots.iter().find(|(r, _)| *r == dir) {
                Some(&(_, u)) => {
                    of_file[id] = u;
                }
                None => {
                    of_file[id] = units.len();
                    roots.push((dir.clone(), units.len()));
                    units.push(domain_unit(&shown_dir(&dir), &f.domains));
                }
            }
        }
        roots.sort_by_key(|(r, _)| std::cmp::Reverse(r.components().count()));
        // Files come directory by directory: the unit of a directory is
        // looked for once, not once per file (a directory may hold tens of
        // thousands).
        let mut last: Option<(&str, Option<usize>)> = None;
        for (id, f) in files.iter().enumerate() {
            if of_file[id] != usize::MAX {
                continue;
            }
            let parent = same_dir_key(f.name);
            let unit = match (last, parent) {
                (Some((seen, unit)), Some(parent)) if seen == parent => unit,
                _ => {
                    let unit = dir_of(f.name).and_then(|dir| {
                        roots
                            .iter()
                            .find(|(r, _)| dir.starts_with(r))
                            .map(|&(_, u)| u)
                    });
                    last = parent.map(|p| (p, unit));
                    unit
                }
            };
            if let Some(u) = unit {
                of_file[id] = u;
            }
        }
    }
    for (id, unit) in of_file.iter_mut().enumerate() {
        if *unit == usize::MAX {
            *unit = units.len();
            units.push(Unit::default());
        }
        units[*unit].files.push(id);
    }
    (of_file, units)
}

fn domain_unit(root: &str, names: &[String]) -> Unit {
    Unit {
        domain: Some(DomainRef {
            name: names.first().cloned().unwrap_or_default(),
            root: root.to_owned(),
        }),
        ..Unit::default()
    }
}

/// A text that two names share only if their directories are the same:
/// all but the last component, when that one is a plain name (no `Path`
/// parsing, which costs more than the rest of the loop on a directory of
/// tens of thousands of files). `None` when it cannot tell (or for
/// standard input).
fn same_dir_key(name: &str) -> Option<&str> {
    if name == STDIN_NAME {
        return None;
    }
    let (dir, last) = name.rsplit_once('/').unwrap_or(("", name));
    (!matches!(last, "" | "." | "..")).then_some(dir)
}

/// The directory of a file as given (lexically: `a/b.yaml` → `a`, `b.yaml`
/// → `.`); `None` for standard input, which is in no directory.
fn dir_of(name: &str) -> Option<PathBuf> {
    if name == STDIN_NAME {
        return None;
    }
    let parent = Path::new(name).parent().unwrap_or(Path::new(""));
    // `./a` and `a` are the same directory.
    let clean: PathBuf = parent
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    Some(clean)
}

fn shown_dir(dir: &Path) -> String {
    if dir.as_os_str().is_empty() {
        ".".to_owned()
    } else {
        dir.display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts<'a>(files: &[(&'a str, &[&str])]) -> Vec<FileFacts<'a>> {
        files
            .iter()
            .map(|(name, d)| FileFacts {
                name,
                domains: d.iter().map(|s| (*s).to_owned()).collect(),
            })
            .collect()
    }

    #[test]
    fn nearest_domain_root_wins_and_strays_are_alone() {
        let f = facts(&[
            ("repo/a/domain.yaml", &["a"]),
            ("repo/a/nodes.yaml", &[]),
            ("repo/a/sub/b/domain.yaml", &["b"]),
            ("repo/a/sub/b/deep/groups.yaml", &[]),
            ("repo/a/sub/other.yaml", &[]),
            ("repo/stray.yaml", &[]),
            ("repo/stray2.yaml", &[]),
        ]);
        let (of, units) = partition(&f, Grouping::Domains);
        assert_eq!(of[0], of[1]);
        assert_eq!(of[0], of[4], "a/sub is below a, not below b");
        assert_eq!(of[2], of[3]);
        assert_ne!(of[0], of[2]);
        assert_ne!(of[5], of[6], "each stray file is alone");
        assert!(units[of[5]].alone());
        assert_eq!(
            units[of[2]].domain.as_ref().map(|d| d.name.as_str()),
            Some("b")
        );
        assert_eq!(
            units[of[0]].domain.as_ref().map(|d| d.root.as_str()),
            Some("repo/a")
        );
    }

    #[test]
    fn file_only_puts_every_file_alone() {
        let f = facts(&[("a/domain.yaml", &["a"]), ("a/nodes.yaml", &[])]);
        let (of, units) = partition(&f, Grouping::FileOnly);
        assert_ne!(of[0], of[1]);
        assert!(units.iter().all(Unit::alone));
    }

    #[test]
    fn stdin_is_in_no_directory() {
        let f = facts(&[("x.yaml", &["d"]), (STDIN_NAME, &[])]);
        let (of, units) = partition(&f, Grouping::Domains);
        assert_ne!(of[0], of[1]);
        assert!(units[of[1]].alone());
        assert_eq!(
            units[of[0]].domain.as_ref().map(|d| d.root.as_str()),
            Some(".")
        );
    }
}
