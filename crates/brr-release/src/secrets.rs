//! Secret values: read from the releasing process's environment, handed to
//! the release command, and masked in everything brr keeps or prints.

use std::collections::BTreeMap;

use crate::ReleaseError;

/// Secret values by name. They live in memory only: never hashed, stored,
/// logged or written to a release folder.
#[derive(Clone, Default)]
pub struct Secrets(BTreeMap<String, String>);

/// Names only: a secret's value must not reach a log through `{:?}`.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

impl Secrets {
    /// Reads each of `names` from this process's environment; fails naming
    /// every one that is not set.
    pub fn from_env<'a>(names: impl IntoIterator<Item = &'a String>) -> Result<Self, ReleaseError> {
        Self::from_lookup(names, |n| std::env::var(n).ok())
    }

    /// [`Secrets::from_env`] with another source of values.
    pub fn from_lookup<'a>(
        names: impl IntoIterator<Item = &'a String>,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ReleaseError> {
        let mut values = BTreeMap::new();
        let mut missing = Vec::new();
        for name in names {
            match lookup(name) {
                Some(v) => {
                    values.insert(name.clone(), v);
                }
                None => missing.push(name.clone()),
            }
        }
        if missing.is_empty() { Ok(Self(values)) } else { Err(ReleaseError::MissingSecrets { names: missing }) }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// `text` with every secret value replaced by `[secret NAME]`. A value
    /// of several lines is also masked line by line, so a log read a line
    /// at a time cannot show any line of it. Longer values are replaced
    /// first, so a value that contains another is masked whole.
    pub fn mask(&self, text: &str) -> String {
        let mut needles: Vec<(&str, &str)> = Vec::new();
        for (name, value) in &self.0 {
            if !value.is_empty() {
                needles.push((value, name));
            }
            if value.contains('\n') {
                needles.extend(value.lines().filter(|l| !l.trim().is_empty()).map(|l| (l, name.as_str())));
            }
        }
        needles.sort_by_key(|(v, _)| std::cmp::Reverse(v.len()));
        let mut out = text.to_owned();
        for (value, name) in needles {
            if out.contains(value) {
                out = out.replace(value, &format!("[secret {name}]"));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(pairs: &[(&str, &str)]) -> Secrets {
        Secrets(pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect())
    }

    #[test]
    fn masks_every_occurrence_longest_first() {
        let s = secrets(&[("SHORT", "abc"), ("LONG", "xxabcxx")]);
        assert_eq!(s.mask("a xxabcxx b abc"), "a [secret LONG] b [secret SHORT]");
    }

    #[test]
    fn masks_each_line_of_a_multi_line_value() {
        let s = secrets(&[("KEY", "-----BEGIN-----\nc2VjcmV0\n-----END-----")]);
        assert_eq!(s.mask("got c2VjcmV0 here"), "got [secret KEY] here");
    }

    #[test]
    fn missing_names_are_all_reported() {
        let names = ["A".to_owned(), "B".to_owned(), "C".to_owned()];
        let err = Secrets::from_lookup(&names, |n| (n == "B").then(|| "v".to_owned())).unwrap_err();
        assert!(matches!(err, ReleaseError::MissingSecrets { ref names } if names == &["A", "C"]), "{err}");
    }

    #[test]
    fn debug_shows_names_only() {
        assert_eq!(format!("{:?}", secrets(&[("TOKEN", "hunter2")])), "{\"TOKEN\"}");
    }
}
