//! Where data is: a local path or `s3://bucket/prefix` ([`Location`]), parsed once where
//! arguments are checked and carried as a type after. Imports nothing of skewer's but the
//! error type.

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
            // A dataset at a bucket's root is named for the bucket.
            Location::S3(url) => url
                .key
                .trim_end_matches('/')
                .rsplit('/')
                .next()
                .filter(|n| !n.is_empty())
                .or(Some(url.bucket.as_str()))
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
        assert_eq!(
            Location::parse("s3://bucket/").unwrap().name().as_deref(),
            Some("bucket")
        );
    }
}
