//! S3: `s3://bucket/key` locations and a blocking client over `aws-sdk-s3`.
//!
//! Takes an [`S3Config`] (endpoint) and the standard AWS chain (environment, profile,
//! instance or task role) for credentials and region; gives the few operations skewer needs,
//! each a blocking call that mapper, reducer and upload threads may make at the same time:
//! list (all pages), ranged get, put (plain or conditional), multipart upload of a local
//! file, delete.
//!
//! Faults. The SDK's standard retry mode retries throttling (`503 SlowDown`), 5xx and dropped
//! or reset connections with exponential backoff (5 attempts unless `AWS_MAX_ATTEMPTS` says
//! otherwise). What it does not retry is handled here: a GET whose body is cut after its
//! headers is sent again (as many times), and a multipart completion whose first answer was
//! lost (retried, the upload is gone) is recognised by the object it made. Every other
//! failure becomes [`Error::S3`] naming the `s3://` URL, the operation and the service's own
//! code, with a hint for the usual causes (credentials, bucket, endpoint). A request that
//! hangs without an answer is not timed out (only connecting is, after 10 s).
//!
//! Writes that may land twice. A retried write can find its own first attempt: plain puts
//! and deletes are idempotent; a conditional put ([`S3::put_if`]) then fails its condition,
//! so its caller reads the object back to tell (see [`crate::store::s3`]'s lock).
//!
//! Inputs that change. An [`S3Object`] remembers the ETag the run found (listed, or from the
//! first read) and reads only that version: `If-Match` on every ranged GET (AWS answers 412)
//! and the answer's ETag compared (s3s-fs ignores `If-Match` on a GET). An object overwritten
//! while the run reads it fails the run with [`Error::Input`] ("changed while the run read
//! it"); one that is not read again after a change (small objects are read whole once) is
//! read as the version found.
//!
//! A custom endpoint (`--endpoint`, `AWS_ENDPOINT_URL`) means an S3-compatible store: path-style
//! addressing, and checksums only where the API requires them (many stores reject the newer
//! default trailers).

pub mod inputs;

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use bytes::Bytes;

use crate::error::{Error, Result};

/// Bytes per multipart part by default. S3's minimum is 5 MiB (except the last part); 16 MiB
/// keeps a 10,000-part upload able to hold 156 GiB while four uploads in flight buffer 64 MiB.
pub const PART_BYTES: u64 = 16 << 20;
/// How long one attempt waits for the first byte of an answer (a part of
/// [`PART_BYTES`] at 1 MB/s fits well within it). An upload waits longer, in proportion to
/// what it sends ([`upload_timeouts`]).
const READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);
/// Connecting takes at most this.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The timeouts of a request that sends `bytes`: its answer comes only once they are sent,
/// so the wait allows for them at 256 KiB/s, a slow link, beyond the usual wait.
fn upload_timeouts(bytes: u64) -> aws_sdk_s3::config::Builder {
    let sending = std::time::Duration::from_secs(bytes / (256 << 10));
    aws_sdk_s3::config::Builder::new().timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT + sending)
            .build(),
    )
}
/// The smallest part S3 accepts (every part but the last).
pub const MIN_PART_BYTES: u64 = 5 << 20;
/// Objects per DeleteObjects request (the API's maximum).
const DELETE_BATCH: usize = 1000;
/// Attempts per request when `AWS_MAX_ATTEMPTS` is not set.
const MAX_ATTEMPTS: u32 = 5;

/// How to reach S3: options beyond the standard AWS chain.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct S3Config {
    /// An S3-compatible endpoint (`--endpoint`); `AWS_ENDPOINT_URL` also works.
    pub endpoint: Option<String>,
}

pub use crate::location::S3Url;

/// Whether `text` names an S3 location.
pub fn is_s3(text: &str) -> bool {
    text.starts_with("s3://")
}

/// One listed object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// Its ETag, where the store lists one (AWS does; s3s-fs does not).
    pub etag: Option<String>,
}

/// The condition of a conditional write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Only if there is no object at the key (`If-None-Match: *`).
    Absent,
    /// Only if the object at the key has this ETag (`If-Match`): a compare-and-swap.
    Matches(String),
}

/// Whether two ETags name the same object version (quotes and a weak `W/` ignored).
pub fn same_etag(a: &str, b: &str) -> bool {
    fn bare(t: &str) -> &str {
        t.trim().trim_start_matches("W/").trim_matches('"')
    }
    bare(a) == bare(b)
}

/// A ranged or whole GET that failed.
enum GetFailed {
    /// The request failed (after the SDK's retries).
    Request(Error),
    /// The object is not what it was (412 to `If-Match`, or another ETag).
    Changed(Error),
    /// The response started but its body was cut: the SDK does not retry a streamed body.
    Body(Error),
}

/// A blocking S3 client; clone the `Arc` to share it between threads.
pub struct S3 {
    client: aws_sdk_s3::Client,
    runtime: tokio::runtime::Runtime,
    /// For messages: the endpoint requests go to.
    endpoint: String,
    /// Attempts per request (`AWS_MAX_ATTEMPTS`, else [`MAX_ATTEMPTS`]): also how often a GET
    /// whose body was cut is sent again.
    attempts: u32,
}

impl fmt::Debug for S3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

impl S3 {
    /// Loads the AWS configuration and builds a client. Makes no request.
    pub fn connect(config: &S3Config) -> Result<Arc<S3>> {
        use aws_config::retry::RetryConfig;
        use aws_sdk_s3::config::{Region, RequestChecksumCalculation};
        use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("skewer-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::Config(format!("cannot start the S3 runtime: {e}")))?;
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .http_client(http)
            .timeout_config(
                // A server that accepts a request and never answers would hang the run:
                // the read timeout (first byte of the answer, a 16 MiB part's upload
                // included) bounds each attempt; stalled bodies are the SDK's stalled-stream
                // protection's to catch.
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(CONNECT_TIMEOUT)
                    .read_timeout(READ_TIMEOUT)
                    .build(),
            );
        let attempts = match std::env::var("AWS_MAX_ATTEMPTS") {
            Ok(n) => n.trim().parse().unwrap_or(MAX_ATTEMPTS).max(1),
            Err(_) => {
                loader =
                    loader.retry_config(RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS));
                MAX_ATTEMPTS
            }
        };
        let env_endpoint = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()));
        let endpoint = config.endpoint.clone().or(env_endpoint);
        if let Some(url) = &endpoint {
            loader = loader.endpoint_url(url);
        }
        let shared = runtime.block_on(loader.load());
        let mut builder = aws_sdk_s3::config::Builder::from(&shared);
        if shared.region().is_none() {
            // S3-compatible stores rarely care; AWS itself answers with the bucket's region.
            builder = builder.region(Region::new("us-east-1"));
        }
        if endpoint.is_some() {
            builder = builder
                .force_path_style(true)
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired);
        }
        Ok(Arc::new(S3 {
            client: aws_sdk_s3::Client::from_conf(builder.build()),
            runtime,
            endpoint: endpoint.unwrap_or_else(|| "AWS S3".into()),
            attempts,
        }))
    }

    fn fail<E>(
        &self,
        url: &S3Url,
        op: &'static str,
        e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let reason = match &e {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => format!(
                "cannot reach {}: {}",
                self.endpoint,
                DisplayErrorContext(&e)
            ),
            _ => match (e.code(), e.message()) {
                (Some(code), message) => {
                    let hint = match code {
                        "NoSuchBucket" => " (the bucket does not exist)",
                        "InvalidAccessKeyId"
                        | "SignatureDoesNotMatch"
                        | "AccessDenied"
                        | "NotSignedUp"
                        | "InvalidToken"
                        | "ExpiredToken" => {
                            " (check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
                        }
                        _ => "",
                    };
                    format!("{code}: {}{hint}", message.unwrap_or("no message"))
                }
                // A HEAD, or a store's bare error page: the status says what happened.
                (None, _) => match e.raw_response().map(|r| r.status().as_u16()) {
                    Some(503) => format!(
                        "503 Service Unavailable (the store is throttling or down; tried {} times)",
                        self.attempts
                    ),
                    Some(status) => format!("HTTP {status}: {}", DisplayErrorContext(&e)),
                    None => DisplayErrorContext(&e).to_string(),
                },
            },
        };
        Error::S3 {
            url: url.to_string(),
            op,
            reason,
        }
    }

    /// Checks that the bucket exists and these credentials may use it, before a run writes.
    /// (Some S3-compatible stores create a missing bucket on the first write.)
    pub fn check_bucket(&self, url: &S3Url) -> Result<()> {
        let request = self.client.head_bucket().bucket(&url.bucket);
        match self.runtime.block_on(request.send()) {
            Ok(_) => Ok(()),
            // A HEAD response has no body: only the status tells.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                Err(Error::S3 {
                    url: url.to_string(),
                    op: "use",
                    reason: "NoSuchBucket (the bucket does not exist)".into(),
                })
            }
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
                Err(Error::S3 {
                    url: url.to_string(),
                    op: "use",
                    reason: "AccessDenied (check the credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)".into(),
                })
            }
            Err(e) => Err(self.fail(url, "use", e)),
        }
    }

    /// Every object under `prefix` (all pages), in key order.
    pub fn list(&self, url: &S3Url) -> Result<Vec<Listed>> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let request = self
                .client
                .list_objects_v2()
                .bucket(&url.bucket)
                .prefix(&url.key)
                .set_continuation_token(token.take());
            let page = self
                .runtime
                .block_on(request.send())
                .map_err(|e| self.fail(url, "list", e))?;
            for object in page.contents() {
                if let Some(key) = object.key() {
                    out.push(Listed {
                        key: key.to_string(),
                        size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                        etag: object.e_tag().map(str::to_string),
                    });
                }
            }
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_string()),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Bytes `[start, start + len)` of an object.
    pub fn get_range(&self, url: &S3Url, start: u64, len: usize) -> Result<Bytes> {
        self.read_range(url, start, len, None)
            .map(|(bytes, _)| bytes)
    }

    /// Bytes `[start, start + len)` of an object and its ETag. With `etag`, only of that
    /// version of the object: the request says `If-Match` (AWS answers 412 to another
    /// version) and the answer's ETag is compared too (s3s-fs ignores `If-Match` on a GET);
    /// another version is [`Error::Input`], "changed while the run read it".
    pub fn read_range(
        &self,
        url: &S3Url,
        start: u64,
        len: usize,
        etag: Option<&str>,
    ) -> Result<(Bytes, Option<String>)> {
        if len == 0 {
            return Ok((Bytes::new(), etag.map(str::to_string)));
        }
        let range = format!("bytes={start}-{}", start + len as u64 - 1);
        let request = self
            .client
            .get_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .range(range)
            .set_if_match(etag.map(str::to_string));
        let (bytes, got) = self
            .get_with_retries(url, etag, || request.clone().send())?
            .ok_or_else(|| Error::Input {
                path: url.to_string().into(),
                reason: "changed while the run read it (it was deleted): run again once it is \
                         complete"
                    .into(),
            })?;
        if bytes.len() != len {
            return Err(Error::S3 {
                url: url.to_string(),
                op: "read",
                reason: format!(
                    "asked for {len} bytes at offset {start}, got {} (did the object change?)",
                    bytes.len()
                ),
            });
        }
        Ok((bytes, got))
    }

    /// A whole object, or `None` if there is no such key.
    pub fn get(&self, url: &S3Url) -> Result<Option<Bytes>> {
        Ok(self.get_tagged(url)?.map(|(bytes, _)| bytes))
    }

    /// A whole object and its ETag, or `None` if there is no such key.
    pub fn get_tagged(&self, url: &S3Url) -> Result<Option<(Bytes, Option<String>)>> {
        let request = self.client.get_object().bucket(&url.bucket).key(&url.key);
        self.get_with_retries(url, None, || request.clone().send())
    }

    /// Sends a GET (`send` makes the request) and reads its body, sending it again when the
    /// body is cut (up to the attempts the SDK makes for a request). `None`: no such key.
    fn get_with_retries<F>(
        &self,
        url: &S3Url,
        etag: Option<&str>,
        send: impl Fn() -> F,
    ) -> Result<Option<(Bytes, Option<String>)>>
    where
        F: std::future::Future<
                Output = std::result::Result<
                    aws_sdk_s3::operation::get_object::GetObjectOutput,
                    SdkError<
                        aws_sdk_s3::operation::get_object::GetObjectError,
                        aws_sdk_s3::config::http::HttpResponse,
                    >,
                >,
            >,
    {
        let mut attempt = 1;
        loop {
            let result = self.runtime.block_on(async {
                let out = match send().await {
                    Ok(out) => out,
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                        return Ok(None);
                    }
                    Err(e) if is_precondition_failed(&e) => {
                        return Err(GetFailed::Changed(changed(url, etag, None)));
                    }
                    Err(e) => return Err(GetFailed::Request(self.fail(url, "read", e))),
                };
                let got = out.e_tag().map(str::to_string);
                if let (Some(want), Some(got)) = (etag, &got)
                    && !same_etag(want, got)
                {
                    return Err(GetFailed::Changed(changed(url, Some(want), Some(got))));
                }
                match out.body.collect().await {
                    Ok(body) => Ok(Some((body.into_bytes(), got))),
                    Err(e) => Err(GetFailed::Body(Error::S3 {
                        url: url.to_string(),
                        op: "read",
                        reason: DisplayErrorContext(&e).to_string(),
                    })),
                }
            });
            match result {
                Ok(found) => return Ok(found),
                Err(GetFailed::Body(e)) if attempt < self.attempts => {
                    tracing::debug!(%url, attempt, "the body of a GET was cut: {e}");
                    std::thread::sleep(std::time::Duration::from_millis(50 << attempt.min(6)));
                    attempt += 1;
                }
                Err(GetFailed::Request(e) | GetFailed::Changed(e) | GetFailed::Body(e)) => {
                    return Err(e);
                }
            }
        }
    }

    /// Writes an object in one request.
    pub fn put(&self, url: &S3Url, bytes: impl Into<Bytes>) -> Result<()> {
        let bytes = bytes.into();
        let timeouts = upload_timeouts(bytes.len() as u64);
        let request = self
            .client
            .put_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .body(ByteStream::from(bytes))
            .customize()
            .config_override(timeouts);
        self.runtime
            .block_on(request.send())
            .map_err(|e| self.fail(url, "write", e))?;
        Ok(())
    }

    /// Writes an object only if `condition` holds (a conditional write); `false` if it does
    /// not. A write that did land but whose answer was lost and retried also reads `false`:
    /// read the object back to tell.
    pub fn put_if(
        &self,
        url: &S3Url,
        bytes: impl Into<Bytes>,
        condition: &Precondition,
    ) -> Result<bool> {
        let request = self
            .client
            .put_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .body(ByteStream::from(bytes.into()));
        let request = match condition {
            Precondition::Absent => request.if_none_match("*"),
            Precondition::Matches(etag) => request.if_match(etag),
        };
        match self.runtime.block_on(request.send()) {
            Ok(_) => Ok(true),
            Err(e) if is_precondition_failed(&e) => Ok(false),
            // If-Match on a key with no object (AWS): the object it was to replace is gone.
            Err(e)
                if matches!(condition, Precondition::Matches(_))
                    && e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(false)
            }
            Err(e) => Err(self.fail(url, "write", e)),
        }
    }

    /// Deletes one object only if it still has the ETag `etag` (`If-Match`, where the store
    /// honours it on a delete: AWS does, s3s-fs ignores it and deletes). Missing is not an
    /// error; neither is another version (412): it is left alone.
    pub fn delete_if_match(&self, url: &S3Url, etag: Option<&str>) -> Result<()> {
        let request = self
            .client
            .delete_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .set_if_match(etag.map(str::to_string));
        match self.runtime.block_on(request.send()) {
            Ok(_) => Ok(()),
            Err(e)
                if is_precondition_failed(&e)
                    || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) =>
            {
                Ok(())
            }
            // A store that refuses the condition rather than ignoring it: the caller checked
            // the object just before.
            Err(e) if etag.is_some() && e.code() == Some("NotImplemented") => {
                self.delete_if_match(url, None)
            }
            Err(e) => Err(self.fail(url, "delete", e)),
        }
    }

    /// An object's size, or `None` if there is no such key.
    pub fn head_size(&self, url: &S3Url) -> Result<Option<u64>> {
        let request = self.client.head_object().bucket(&url.bucket).key(&url.key);
        match self.runtime.block_on(request.send()) {
            Ok(out) => Ok(Some(
                u64::try_from(out.content_length().unwrap_or(0)).unwrap_or(0),
            )),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(self.fail(url, "look at", e)),
        }
    }

    /// Uploads a local file: one request up to `part_bytes`, else a multipart upload read a
    /// part at a time, aborted if any part fails so that no upload is left dangling.
    pub fn upload_file(&self, path: &Path, url: &S3Url, part_bytes: u64) -> Result<()> {
        use std::os::unix::fs::FileExt;
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let read_part = |offset: u64| -> Result<Bytes> {
            let len = (size - offset).min(part_bytes) as usize;
            let mut buf = vec![0; len];
            file.read_exact_at(&mut buf, offset)
                .map_err(|e| Error::io(path, e))?;
            Ok(buf.into())
        };
        if size <= part_bytes {
            return self.put(url, read_part(0)?);
        }
        let create = self
            .client
            .create_multipart_upload()
            .bucket(&url.bucket)
            .key(&url.key);
        let upload = self
            .runtime
            .block_on(create.send())
            .map_err(|e| self.fail(url, "start a multipart upload", e))?;
        let Some(id) = upload.upload_id().map(str::to_string) else {
            return Err(Error::S3 {
                url: url.to_string(),
                op: "start a multipart upload",
                reason: "the store returned no upload id".into(),
            });
        };
        let parts = (|| -> Result<Vec<CompletedPart>> {
            let mut parts = Vec::new();
            let mut offset = 0;
            while offset < size {
                let number = parts.len() as i32 + 1;
                fail_point(&format!("part:{number}"), url)?;
                let body = read_part(offset)?;
                offset += body.len() as u64;
                let timeouts = upload_timeouts(body.len() as u64);
                let request = self
                    .client
                    .upload_part()
                    .bucket(&url.bucket)
                    .key(&url.key)
                    .upload_id(&id)
                    .part_number(number)
                    .body(ByteStream::from(body))
                    .customize()
                    .config_override(timeouts);
                let out = self
                    .runtime
                    .block_on(request.send())
                    .map_err(|e| self.fail(url, "upload a part", e))?;
                parts.push(
                    CompletedPart::builder()
                        .set_e_tag(out.e_tag().map(str::to_string))
                        .part_number(number)
                        .build(),
                );
            }
            Ok(parts)
        })();
        let completed = parts.and_then(|parts| {
            let request = self
                .client
                .complete_multipart_upload()
                .bucket(&url.bucket)
                .key(&url.key)
                .upload_id(&id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                );
            match self.runtime.block_on(request.send()) {
                Ok(_) => Ok(()),
                // The SDK retried a completion whose answer was lost: the upload is gone
                // because it completed. The key is this run's own (part-<run>-…), so an
                // object of the file's size there is this upload.
                Err(e)
                    if e.code() == Some("NoSuchUpload")
                        && self.head_size(url).ok().flatten() == Some(size) =>
                {
                    Ok(())
                }
                Err(e) => Err(self.fail(url, "complete the multipart upload", e)),
            }
        });
        if let Err(e) = completed {
            // Best effort: the error that stopped the upload is the one to report.
            let _ = self.abort_upload(url, &id);
            return Err(e);
        }
        Ok(())
    }

    /// Aborts a multipart upload (its parts are discarded).
    pub fn abort_upload(&self, url: &S3Url, upload_id: &str) -> Result<()> {
        let request = self
            .client
            .abort_multipart_upload()
            .bucket(&url.bucket)
            .key(&url.key)
            .upload_id(upload_id);
        self.runtime
            .block_on(request.send())
            .map_err(|e| self.fail(url, "abort the multipart upload", e))?;
        Ok(())
    }

    /// Multipart uploads in progress under `prefix`: (key, upload id). `None` where the store
    /// does not implement the listing.
    pub fn incomplete_uploads(&self, prefix: &S3Url) -> Result<Option<Vec<(String, String)>>> {
        let mut out = Vec::new();
        let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let request = self
                .client
                .list_multipart_uploads()
                .bucket(&prefix.bucket)
                .prefix(&prefix.key)
                .set_key_marker(key_marker.take())
                .set_upload_id_marker(id_marker.take());
            let page = match self.runtime.block_on(request.send()) {
                Ok(page) => page,
                Err(e) if matches!(e.code(), Some("NotImplemented" | "MethodNotAllowed")) => {
                    return Ok(None);
                }
                Err(e) => return Err(self.fail(prefix, "list the multipart uploads", e)),
            };
            for u in page.uploads() {
                if let (Some(k), Some(id)) = (u.key(), u.upload_id()) {
                    out.push((k.to_string(), id.to_string()));
                }
            }
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_string);
            id_marker = page.next_upload_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        Ok(Some(out))
    }

    /// Deletes `keys` (missing ones are not an error), a thousand per request.
    pub fn delete(&self, bucket: &S3Url, keys: &[String]) -> Result<()> {
        self.delete_counted(bucket, keys, &mut 0)
    }

    /// [`S3::delete`], counting in `deleted` the keys known to be deleted (for a message on
    /// where it stopped).
    pub fn delete_counted(
        &self,
        bucket: &S3Url,
        keys: &[String],
        deleted: &mut usize,
    ) -> Result<()> {
        for batch in keys.chunks(DELETE_BATCH) {
            let objects = batch
                .iter()
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| Error::Bug(format!("delete request: {e}")))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| Error::Bug(format!("delete request: {e}")))?;
            let request = self
                .client
                .delete_objects()
                .bucket(&bucket.bucket)
                .delete(delete);
            let out = self
                .runtime
                .block_on(request.send())
                .map_err(|e| self.fail(bucket, "delete objects", e))?;
            *deleted += batch.len() - out.errors().len().min(batch.len());
            if let Some(err) = out.errors().first() {
                return Err(Error::S3 {
                    url: bucket.at(err.key().unwrap_or_default()).to_string(),
                    op: "delete",
                    reason: format!(
                        "{}: {} ({} of {} objects not deleted)",
                        err.code().unwrap_or("error"),
                        err.message().unwrap_or("no message"),
                        out.errors().len(),
                        batch.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Whether a request failed on its condition (`If-Match`, `If-None-Match`): 412, or 409
/// when AWS saw two conditional writes to one key at once.
fn is_precondition_failed<E>(e: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    matches!(
        e.code(),
        Some("PreconditionFailed" | "ConditionalRequestConflict")
    ) || status == Some(412)
}

/// The error for an input object that is no longer the version the run found.
fn changed(url: &S3Url, was: Option<&str>, now: Option<&str>) -> Error {
    let how = match (was, now) {
        (Some(was), Some(now)) => format!(
            "its ETag was {} when the run found it and is {} now",
            crate::units::clip(was, 80),
            crate::units::clip(now, 80)
        ),
        (Some(was), None) => format!(
            "it no longer has the ETag {} it had when the run found it",
            crate::units::clip(was, 80)
        ),
        _ => "it is not the version the run found".into(),
    };
    Error::Input {
        path: url.to_string().into(),
        reason: format!("changed while the run read it ({how}): run again once it is complete"),
    }
}

/// Test hook, as in [`crate::commit`]: `SKEWER_FAIL_AT=part:<n>` fails the n-th part of a
/// multipart upload with an error (not a crash), to show the upload is aborted.
fn fail_point(point: &str, url: &S3Url) -> Result<()> {
    if std::env::var("SKEWER_FAIL_AT").is_ok_and(|p| p == point) {
        return Err(Error::S3 {
            url: url.to_string(),
            op: "upload a part",
            reason: format!("SKEWER_FAIL_AT={point}: injected failure"),
        });
    }
    Ok(())
}

/// An object read by ranged GETs: an input file's bytes (see [`crate::source`]).
///
/// Every read is of the version the run found (its ETag, see [`S3::read_range`]): an object
/// overwritten while the run reads it fails the read, and its `changed()` says so
/// afterwards, even where a decoder turned the failed read into rejects.
#[derive(Debug)]
pub struct S3Object {
    pub s3: Arc<S3>,
    pub url: S3Url,
    pub size: u64,
    /// The ETag of the version the run found; `None`: reads are not checked.
    pub etag: Option<String>,
    /// The whole object, when it is small and was fetched at discovery: a dump of many small
    /// files then costs one request per file, not one per look (sniff, NDJSON check, sample,
    /// read), each a round trip.
    pub whole: Option<Bytes>,
    /// Why a read found another version, once one has.
    changed: std::sync::OnceLock<String>,
}

impl S3Object {
    pub fn new(
        s3: Arc<S3>,
        url: S3Url,
        size: u64,
        etag: Option<String>,
        whole: Option<Bytes>,
    ) -> S3Object {
        S3Object {
            s3,
            url,
            size,
            etag,
            whole,
            changed: std::sync::OnceLock::new(),
        }
    }
}

impl crate::source::RandomAccess for S3Object {
    fn len(&self) -> u64 {
        self.size
    }

    fn changed(&self) -> Option<String> {
        self.changed.get().cloned()
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        if offset >= self.size {
            return Ok(0);
        }
        let len = buf.len().min((self.size - offset) as usize);
        let bytes = self.get_bytes(offset, len)?;
        buf[..len].copy_from_slice(&bytes);
        Ok(len)
    }

    fn get_bytes(&self, offset: u64, len: usize) -> io::Result<Bytes> {
        if let Some(whole) = &self.whole {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            return match start.checked_add(len) {
                Some(end) if end <= whole.len() => Ok(whole.slice(start..end)),
                _ => Err(io::ErrorKind::UnexpectedEof.into()),
            };
        }
        match self
            .s3
            .read_range(&self.url, offset, len, self.etag.as_deref())
        {
            Ok((bytes, _)) => Ok(bytes),
            // The input readers take this kind, with "changed while", for a file that changed
            // under them (an `Error::Input`).
            Err(Error::Input { reason, .. }) => {
                let _ = self.changed.set(reason.clone());
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, reason))
            }
            // The caller names the object; keep the reason only.
            Err(Error::S3 { op, reason, .. }) => {
                Err(io::Error::other(format!("cannot {op}: {reason}")))
            }
            Err(other) => Err(io::Error::other(other.to_string())),
        }
    }

    fn read_size(&self) -> usize {
        // A request costs milliseconds: ask for much at a time.
        8 << 20
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_bucket_and_key() {
        let url = S3Url::parse("s3://lake/contacts/dt=2026-11-20/")
            .unwrap()
            .unwrap();
        assert_eq!(url.bucket, "lake");
        assert_eq!(url.key, "contacts/dt=2026-11-20/");
        assert_eq!(url.dir_prefix(), "contacts/dt=2026-11-20/");
        assert_eq!(url.to_string(), "s3://lake/contacts/dt=2026-11-20/");
        let bare = S3Url::parse("s3://lake").unwrap().unwrap();
        assert_eq!((bare.key.as_str(), bare.dir_prefix().as_str()), ("", ""));
        assert!(S3Url::parse("s3:///x").unwrap().is_err());
        assert!(S3Url::parse("/data/lake").is_none());
    }
}
