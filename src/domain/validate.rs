//! Validation results: every problem with a request, reported at once.

use std::fmt;

/// One invalid field: its path in the request (`database.connection_uri`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The field path, as the client spelled it in the request.
    pub field: String,
    /// What is wrong, lowercase, without the rejected value when it may be secret.
    pub description: String,
}

/// A request that failed validation, with every violation found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invalid {
    /// The violations, in the order they were found.
    pub violations: Vec<FieldViolation>,
}

impl Invalid {
    /// A single-violation error.
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        let mut invalid = Invalid::default();
        invalid.add(field, description);
        invalid
    }

    /// Records one more violation.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.violations.push(FieldViolation { field: field.into(), description: description.into() });
    }

    /// Records the violations of a nested result, returning its value when valid.
    pub fn check<T>(&mut self, result: Result<T, Invalid>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(nested) => {
                self.violations.extend(nested.violations);
                None
            }
        }
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn into_result<T>(self, value: impl FnOnce() -> T) -> Result<T, Invalid> {
        if self.violations.is_empty() { Ok(value()) } else { Err(self) }
    }

    /// Whether any violation was recorded.
    pub fn is_empty(&self) -> bool {
        self.violations.is_empty()
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .violations
            .iter()
            .map(|violation| format!("{}: {}", violation.field, violation.description))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for Invalid {}
