//! `--input s3://…`: the objects an input value names, each opened as the version found.

use std::sync::Arc;

use super::{S3, S3Object, S3Url};
use crate::error::{Error, Result};
use crate::source::Found;

/// S3 objects up to this size are fetched whole when discovered, ...
const WHOLE_OBJECT: u64 = 256 << 10;
/// ... as long as all of them together stay within this.
const WHOLE_BUDGET: u64 = 64 << 20;
/// Requests in flight while discovering S3 inputs (each is mostly waiting).
const DISCOVER_REQUESTS: usize = 16;

/// `s3://bucket/prefix`: the object itself, or the objects under `prefix/` (hidden names
/// skipped); `s3://bucket/dt=*/x*.json`: the objects (or folders) the glob matches. `input`
/// is the value as given, for messages; each object's first `head_bytes` (or all of a small
/// one) are read, to recognise its format.
pub fn discover(s3: &Arc<S3>, url: &S3Url, input: &str, head_bytes: usize) -> Result<Vec<Found>> {
    let hidden_below = |rest: &str| rest.split('/').any(|c| c.starts_with(['.', '_']));
    let mut keys = Vec::new();
    if url.key.contains(['*', '?', '[']) {
        let literal = &url.key[..url.key.find(['*', '?', '[']).unwrap_or(url.key.len())];
        let pattern = glob::Pattern::new(url.key.trim_end_matches('/'))
            .map_err(|e| Error::Config(format!("--input {input:?}: bad pattern: {e}")))?;
        let options = glob::MatchOptions {
            require_literal_separator: true,
            ..Default::default()
        };
        for object in s3.list(&url.at(literal))? {
            // The key itself, or a folder above it, matches; below a matched folder hidden
            // names are skipped, as in a local directory.
            let key = &object.key;
            let matched = key
                .match_indices('/')
                .map(|(i, _)| i)
                .chain([key.len()])
                .any(|end| {
                    pattern.matches_with(&key[..end], options)
                        && (end == key.len() || !hidden_below(&key[end + 1..]))
                });
            if matched && !key.ends_with('/') {
                keys.push(object);
            }
        }
    } else {
        let exact = url.key.trim_end_matches('/');
        let dir = url.dir_prefix();
        for object in s3.list(url)? {
            let under = object.key.strip_prefix(&dir).filter(|_| !dir.is_empty());
            let take = if object.key == exact && !url.key.ends_with('/') {
                true
            } else if dir.is_empty() {
                !hidden_below(&object.key)
            } else {
                under.is_some_and(|rest| !rest.is_empty() && !hidden_below(rest))
            };
            if take && !object.key.ends_with('/') {
                keys.push(object);
            }
        }
    }
    if keys.is_empty() {
        return Err(Error::NoInput {
            input: input.to_string(),
            what: "objects",
        });
    }
    // Sniffing is a round trip per object: many at once. Small objects are fetched whole
    // (within a budget), which spares them every later request.
    let budget = std::sync::atomic::AtomicU64::new(WHOLE_BUDGET);
    let files = crate::par::par_map(&keys, DISCOVER_REQUESTS, |object| {
        use std::sync::atomic::Ordering::Relaxed;
        let at = url.at(object.key.clone());
        let name = at.to_string();
        let whole = object.size <= WHOLE_OBJECT
            && budget
                .fetch_update(Relaxed, Relaxed, |left| left.checked_sub(object.size))
                .is_ok();
        let head_len = if whole {
            object.size
        } else {
            object.size.min(head_bytes as u64)
        };
        // Every later read is of this version of the object (its ETag, listed or read here).
        let (head, etag) = s3.read_range(&at, 0, head_len as usize, object.etag.as_deref())?;
        let etag = object.etag.clone().or(etag);
        let handle: crate::source::Handle = Arc::new(S3Object::new(
            s3.clone(),
            at,
            object.size,
            etag,
            whole.then(|| head.clone()),
        ));
        Ok(Found {
            name,
            size: object.size,
            head,
            handle,
        })
    });
    files.into_iter().collect()
}
