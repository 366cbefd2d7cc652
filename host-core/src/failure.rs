//! What a storage backend's failure carries into the pipeline's errors: one line saying what
//! failed (what the stores, the registry and the conflict log print), and the backend's own
//! error as the `source` (the SDK's, the file system's, the decoder's), kept for whoever walks
//! the chain.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// A backend failure: what was being done and what went wrong, in one line, with the error
/// that caused it when there is one. Cloning shares the cause; two failures are equal when they
/// say the same (the pipeline compares outcomes, and a cause has no equality of its own).
#[derive(Clone)]
pub struct Failure {
    what: String,
    cause: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

impl Failure {
    /// A failure with no underlying error (a check of the pipeline's own).
    pub fn new(what: impl Into<String>) -> Self {
        Failure {
            what: what.into(),
            cause: None,
        }
    }

    /// A failure caused by `cause`. `what` is the line to print, and usually ends with the
    /// cause's own text ("a party item does not parse: missing field `state`").
    pub fn caused_by(
        what: impl Into<String>,
        cause: impl Into<Box<dyn Error + Send + Sync>>,
    ) -> Self {
        Failure {
            what: what.into(),
            cause: Some(Arc::from(cause.into())),
        }
    }

    /// The one-line description.
    pub fn what(&self) -> &str {
        &self.what
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Failure");
        d.field("what", &self.what);
        if let Some(cause) = &self.cause {
            d.field("cause", cause);
        }
        d.finish()
    }
}

impl Error for Failure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

impl PartialEq for Failure {
    fn eq(&self, other: &Self) -> bool {
        self.what == other.what
    }
}

impl Eq for Failure {}

impl From<String> for Failure {
    fn from(what: String) -> Self {
        Failure::new(what)
    }
}

impl From<&str> for Failure {
    fn from(what: &str) -> Self {
        Failure::new(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_is_the_source_and_the_line_is_what_prints() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let f = Failure::caused_by("reading /x: no such file", io);
        assert_eq!(f.to_string(), "reading /x: no such file");
        let source = f.source().expect("the cause is kept");
        assert_eq!(source.to_string(), "no such file");
        assert!(source.downcast_ref::<std::io::Error>().is_some());
        assert!(Failure::new("a check").source().is_none());
    }
}
