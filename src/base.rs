//! Value types every layer shares and that depend on nothing of the pipeline: instants in
//! milliseconds and interned strings ([`interner`]).

pub mod interner;

/// Milliseconds since the Unix epoch, UTC.
pub type Millis = i64;

/// Saved state that cannot be used as it is: built under other settings (the caller replays
/// the log instead), or inconsistent with itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The settings that decide the state changed since it was saved.
    #[error("the {0} changed since this checkpoint")]
    OtherSettings(&'static str),
    /// The saved parts do not agree.
    #[error("inconsistent state: {0}")]
    Inconsistent(String),
}

/// A setting or parameter that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The text is not of the expected form.
    #[error("`{text}` is not {expected}")]
    Form {
        /// What was given.
        text: String,
        /// What is expected.
        expected: &'static str,
    },
    /// The value parses but is out of range.
    #[error("`{text}` {problem}")]
    Range {
        /// What was given.
        text: String,
        /// Its range.
        problem: &'static str,
    },
}

/// A secret string (a token, a password): printed as `***`, read only through
/// [`Secret::expose`].
#[derive(Clone, serde::Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// A secret holding `value`.
    pub fn new(value: String) -> Secret {
        Secret(value)
    }

    /// The secret value.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
