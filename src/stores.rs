//! Stores: where data is ([`Location`]: a local path or `s3://bucket/prefix`, parsed once
//! where arguments are read), and the object stores inputs and histories live in besides
//! local files, connected on first use: the one place the `s3` feature switches for them.

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

/// Where a dataset, a history or an input folder is: a local path or an `s3://` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    Local(std::path::PathBuf),
    S3(S3Url),
}

impl Location {
    /// `s3://bucket[/prefix]` is S3 (checked: a bucket is named); anything else a local path.
    pub fn parse(text: &str) -> crate::Result<Location> {
        match S3Url::parse(text) {
            Some(url) => url.map(Location::S3),
            None => Ok(Location::Local(text.into())),
        }
    }

    /// The last segment of its path (the history records the dataset's name).
    pub fn name(&self) -> Option<String> {
        match self {
            Location::Local(p) => p.file_name().map(|n| n.to_string_lossy().into_owned()),
            Location::S3(url) => url
                .key
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .map(str::to_string),
        }
    }

    /// The location of `rel` (a `/`-separated relative path) under this one.
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Local(p) => Location::Local(p.join(rel)),
            Location::S3(url) => Location::S3(url.at(format!("{}{rel}", url.dir_prefix()))),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::S3(url) => write!(f, "{url}"),
        }
    }
}

/// `s3://bucket/key`: a bucket and a key (or key prefix, without a leading `/`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    /// Parses `s3://bucket[/key]`; `None` if `text` is not an `s3://` URL.
    pub fn parse(text: &str) -> Option<crate::Result<S3Url>> {
        let rest = text.strip_prefix("s3://")?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Some(Err(crate::Error::Config(format!(
                "{text:?}: expected s3://bucket/prefix"
            ))));
        }
        Some(Ok(S3Url {
            bucket: bucket.to_string(),
            key: key.to_string(),
        }))
    }

    /// The same bucket at `key`.
    pub fn at(&self, key: impl Into<String>) -> S3Url {
        S3Url {
            bucket: self.bucket.clone(),
            key: key.into(),
        }
    }

    /// The key as a folder prefix: empty, or ending in `/`.
    pub fn dir_prefix(&self) -> String {
        let key = self.key.trim_end_matches('/');
        if key.is_empty() {
            String::new()
        } else {
            format!("{key}/")
        }
    }
}

impl std::fmt::Display for S3Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_once_and_name_their_last_segment() {
        let s3 = Location::parse("s3://lake/contacts/").unwrap();
        assert_eq!(s3.name().as_deref(), Some("contacts"));
        assert_eq!(
            s3.join("_skewer/history/").to_string(),
            "s3://lake/contacts/_skewer/history/"
        );
        assert!(Location::parse("s3:///x").is_err());
        let local = Location::parse("/data/lake").unwrap();
        assert_eq!(local, Location::Local("/data/lake".into()));
        assert_eq!(local.join("_skewer").to_string(), "/data/lake/_skewer");
        assert_eq!(Location::parse("s3://bucket").unwrap().name(), None);
    }
}
