//! Stores: where inputs and histories live besides local files, connected on first use; the
//! one place the `s3` feature switches for them.

#[cfg(feature = "s3")]
use std::sync::Arc;

/// Access to object stores, connected on first use: a run that reads and writes only local
/// files never loads AWS configuration.
#[derive(Debug, Default)]
pub struct Stores {
    #[cfg(feature = "s3")]
    config: crate::s3::S3Config,
    #[cfg(feature = "s3")]
    s3: std::sync::OnceLock<Arc<crate::s3::S3>>,
}

impl Stores {
    /// Stores reached through `endpoint` (an S3-compatible store; `None`: AWS's own, or
    /// `AWS_ENDPOINT_URL`). Without the `s3` feature the endpoint is unused.
    pub fn with_endpoint(endpoint: Option<String>) -> Stores {
        #[cfg(feature = "s3")]
        {
            Stores {
                config: crate::s3::S3Config { endpoint },
                s3: std::sync::OnceLock::new(),
            }
        }
        #[cfg(not(feature = "s3"))]
        {
            let _ = endpoint;
            Stores {}
        }
    }

    /// The S3 client.
    #[cfg(feature = "s3")]
    pub fn s3(&self) -> crate::Result<Arc<crate::s3::S3>> {
        if let Some(s3) = self.s3.get() {
            return Ok(s3.clone());
        }
        let s3 = crate::s3::S3::connect(&self.config)?;
        Ok(self.s3.get_or_init(|| s3).clone())
    }
}

/// The error for an `s3://` location in a build without the `s3` feature.
pub fn no_s3(location: &str) -> crate::Error {
    crate::Error::Config(format!(
        "{location}: this skewer was built without S3 support (cargo feature \"s3\")"
    ))
}
