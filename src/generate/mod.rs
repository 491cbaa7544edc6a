//! `skewer gen`: synthetic HubSpot-like dumps, deterministic by seed, with the answer key.
//!
//! Volumes follow the shape of real portals: per object about
//! [`ROWS_PER_OBJECT`] version rows, of which the top 20 properties (analytics and email
//! counters, with many versions on nearly every object) hold about 90 %, while ~1,260 custom
//! properties are present on few objects with one or two versions each. Values are realistic
//! per kind (emails, epoch-ms dates, counters, enums, names, long free text with quotes,
//! newlines and non-ASCII), `""` and `null` both occur, ids are above 2³¹, and versions come
//! newest first, as HubSpot sends them.
//!
//! Next to the data it writes `_expected.json` (skipped by input discovery, like every `_`
//! name): the records and rows written and their [`Checksum`], so tests and benchmarks can
//! prove a run lost and invented nothing.
//!
//! Deterministic: every object draws from its own generator seeded by (seed, object index),
//! so files can be written in parallel and still come out byte for byte the same.

pub mod names;
mod parquet;
mod timeline;

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use self::timeline::{Buffers, Change, Timeline};
use crate::batch::Row;
use crate::checksum::Checksum;
use crate::error::{Error, Result};

/// Mean version rows per object.
pub const ROWS_PER_OBJECT: f64 = 140.0;
/// The first id; ids above 2³¹ catch readers that assume 32-bit ids.
pub const FIRST_ID: i64 = 3_000_000_000;
const PORTAL: u32 = 62_515;
/// "Now" for generated histories: 2026-11-20T00:00:00Z.
const NOW_MS: i64 = 1_795_132_800_000;

/// Which HubSpot API shape to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dialect {
    /// v1 contacts: `vid`, `properties.<p>.versions[]` with `source-type`, `timestamp` (ms).
    V1,
    /// v1 deals: `dealId`, versions with `source`, `sourceId`.
    V1Deals,
    /// v3 objects: `id` as a string, `propertiesWithHistory`, ISO-8601 timestamps.
    V3,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    Ndjson,
    /// Nested Parquet: `properties` STRUCT of `{value, versions: LIST<STRUCT<…>>}`.
    Parquet,
}

#[derive(Clone, Debug)]
pub struct GenConfig {
    pub objects: u64,
    pub properties: usize,
    pub dialect: Dialect,
    pub format: Format,
    /// gzip each NDJSON file.
    pub gzip: bool,
    /// Parquet: `properties` as a MAP instead of a STRUCT.
    pub parquet_map: bool,
    /// Parquet: versions also carry `source-type`, `source-id`, `source-label` and
    /// `updated-by-user-id` (by default only `value` and `timestamp`, as in the field report).
    pub parquet_sources: bool,
    /// Parquet: objects per row group.
    pub row_group_objects: u64,
    /// If set, the first property holds this share of all rows (e.g. 0.6) and the others
    /// share the rest in their usual proportions: the extreme skew a plan must absorb.
    pub hot_share: Option<f64>,
    pub out: PathBuf,
    pub files: usize,
    pub seed: u64,
    pub threads: usize,
    /// With N > 0: a base dump and N increments, each changing about `change_rate` of the
    /// objects, deleting about `delete_rate` and adding half as many new as it changes
    /// ([`generate`] says where each goes).
    pub increments: u32,
    pub change_rate: f64,
    pub delete_rate: f64,
}

impl GenConfig {
    /// `skewer gen`'s defaults, writing to `out`: 10,000 v1 contacts with 1,280 properties,
    /// one NDJSON file, seed 1.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        GenConfig {
            objects: 10_000,
            properties: 1280,
            dialect: Dialect::V1,
            format: Format::Ndjson,
            gzip: false,
            parquet_map: false,
            parquet_sources: false,
            row_group_objects: 16_384,
            hot_share: None,
            out: out.into(),
            files: 1,
            seed: 1,
            threads: 2,
            increments: 0,
            change_rate: 0.01,
            delete_rate: 0.001,
        }
    }
}

/// The answer key: what the generated input holds, exploded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expected {
    pub records: u64,
    pub rows: u64,
    pub checksum: Checksum,
    pub dialect: Dialect,
    pub format: Format,
    pub objects: u64,
    pub properties: usize,
    pub files: usize,
    pub seed: u64,
}

/// The name of the answer key next to the data.
pub const EXPECTED_FILE: &str = "_expected.json";

/// Reads `_expected.json` from a generated directory.
pub fn read_expected(dir: &Path) -> Result<Expected> {
    let path = dir.join(EXPECTED_FILE);
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::json(&path, &e))
}

/// SplitMix64, seeded per object.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn for_object(seed: u64, object: u64) -> Self {
        Rng(planner::fmix64(seed ^ 0x5bd1_e995) ^ planner::fmix64(object.wrapping_add(1)))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        planner::fmix64(self.0)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }

    pub(crate) fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// How a property's values look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Email,
    EpochMs,
    Count,
    Stage,
    Person,
    Text,
    Url,
    Token,
}

fn kind(name: &str) -> Kind {
    let has = |s: &str| name.contains(s);
    if has("email") && !has("_email_") || name == "work_email" {
        Kind::Email
    } else if has("date") || has("timestamp") || has("_time_") || has("last_") && has("open") {
        Kind::EpochMs
    } else if has("num_")
        || has("count")
        || has("score")
        || has("revenue")
        || has("days_")
        || has("views")
    {
        Kind::Count
    } else if has("stage") || has("status") || has("tier") || has("persona") || has("type") {
        Kind::Stage
    } else if has("name")
        || has("city")
        || has("company")
        || has("country")
        || has("state")
        || has("school")
    {
        Kind::Person
    } else if has("message") || has("notes") || has("bio") || has("referrer") {
        Kind::Text
    } else if has("url") || has("website") {
        Kind::Url
    } else {
        Kind::Token
    }
}

/// Per property: how often objects have it and how many versions they then have.
pub(crate) struct Model {
    pub(crate) names: Vec<String>,
    kinds: Vec<Kind>,
    presence: Vec<f64>,
    mean_versions: Vec<f64>,
}

impl Model {
    pub(crate) fn new(properties: usize, hot_share: Option<f64>) -> Self {
        let names = names::property_names(properties);
        let head = properties.min(20);
        let zipf = |n: usize, s: f64| -> Vec<f64> {
            let w: Vec<f64> = (1..=n).map(|k| (k as f64).powf(-s)).collect();
            let t: f64 = w.iter().sum();
            w.into_iter().map(|x| x / t).collect()
        };
        let head_share = if properties > head { 0.9 } else { 1.0 };
        let mut shares: Vec<f64> = zipf(head, 0.7)
            .into_iter()
            .map(|w| w * head_share)
            .collect();
        shares.extend(
            zipf(properties - head, 1.2)
                .into_iter()
                .map(|w| w * (1.0 - head_share)),
        );
        if let Some(hot) = hot_share.filter(|_| properties > 1) {
            let rest: f64 = shares[1..].iter().sum();
            shares[0] = hot;
            for s in &mut shares[1..] {
                *s *= (1.0 - hot) / rest;
            }
        }
        let mut presence = Vec::with_capacity(properties);
        let mut mean_versions = Vec::with_capacity(properties);
        for share in shares {
            let rows = ROWS_PER_OBJECT * share;
            let p = (rows / 1.5).min(1.0);
            presence.push(p);
            mean_versions.push((rows / p.max(f64::MIN_POSITIVE)).max(1.0));
        }
        let kinds = names.iter().map(|n| kind(n)).collect();
        Model {
            names,
            kinds,
            presence,
            mean_versions,
        }
    }
}

/// One version as generated: what skewer should read back from it.
#[derive(Clone, Debug, Default)]
pub(crate) struct Version {
    pub(crate) timestamp: i64,
    pub(crate) value: Option<String>,
    pub(crate) source_type: Option<&'static str>,
    pub(crate) source_id: Option<String>,
    pub(crate) source_label: Option<&'static str>,
    pub(crate) updated_by: Option<i64>,
}

const SOURCES: &[&str] = &[
    "CRM_UI",
    "FORM",
    "API",
    "ANALYTICS",
    "EMAIL",
    "IMPORT",
    "CALCULATED",
    "INTEGRATION",
    "SALES",
    "BATCH_UPDATE",
    "AUTOMATION",
];
const STAGES: &[&str] = &[
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
    "other",
];
const FIRST: &[&str] = &[
    "Ana", "Bo", "Chen", "Dana", "Émile", "Fatima", "Gus", "Hiro", "Ines", "José", "Kai", "Łucja",
];
const LAST: &[&str] = &[
    "Smith", "García", "Nguyen", "O'Brien", "Müller", "Rossi", "Kowalski", "Tanaka", "Silva",
];
const WORDS: &[&str] = &[
    "call",
    "back",
    "re:",
    "pricing",
    "\"urgent\"",
    "renewal",
    "démo",
    "contract",
    "Q3",
    "budget",
    "follow-up",
    "—",
    "ok",
    "signed",
    "c:\\tmp",
    "tab\there",
    "🚀",
    "naïve",
    "user@x.io",
];

fn value(kind: Kind, rng: &mut Rng, object: i64) -> Option<String> {
    let roll = rng.below(100);
    if roll < 2 {
        return None;
    }
    if roll < 4 {
        return Some(String::new());
    }
    Some(match kind {
        Kind::Email => format!(
            "{}.{}{}@{}",
            rng.pick(FIRST).to_lowercase(),
            rng.pick(LAST).to_lowercase().replace('\'', ""),
            rng.below(1000),
            rng.pick(&["example.com", "x.io", "acme.co.uk", "mail.de"])
        ),
        Kind::EpochMs => (NOW_MS - rng.below(3 * 365 * 86_400_000) as i64).to_string(),
        Kind::Count => {
            let max = if rng.below(10) == 0 { 100_000 } else { 50 };
            rng.below(max).to_string()
        }
        Kind::Stage => rng.pick(STAGES).to_string(),
        Kind::Person => format!("{} {}", rng.pick(FIRST), rng.pick(LAST)),
        Kind::Url => format!(
            "https://www.example.com/p/{}?utm_source={}",
            rng.below(5000),
            object % 97
        ),
        Kind::Token => format!("v{:x}", rng.below(1 << 20)),
        Kind::Text => {
            // Mostly a sentence, now and then a long note.
            let n = if rng.below(50) == 0 {
                300 + rng.below(3000)
            } else {
                3 + rng.below(25)
            };
            let mut s = String::new();
            for i in 0..n {
                if i > 0 {
                    s.push(if rng.below(15) == 0 { '\n' } else { ' ' });
                }
                let word = *rng.pick(WORDS);
                s.push_str(word);
            }
            s
        }
    })
}

/// Generates one object's versions of property `p` (newest first) into `out`; returns false if
/// the object does not have the property.
pub(crate) fn versions(
    model: &Model,
    p: usize,
    rng: &mut Rng,
    object: i64,
    out: &mut Vec<Version>,
) -> bool {
    out.clear();
    if rng.unit() >= model.presence[p] {
        return false;
    }
    let extra = model.mean_versions[p] - 1.0;
    let n = if extra <= 0.0 {
        1
    } else {
        // Geometric-like tail around the mean, capped.
        1 + ((-(1.0 - rng.unit()).ln() * extra).round() as u64).min(2_000)
    };
    let mut ts = NOW_MS - rng.below(86_400_000) as i64;
    for _ in 0..n {
        let source_type = Some(*rng.pick(SOURCES));
        let source_id = match rng.below(4) {
            0 => None,
            1 => Some(format!("userId:{}", 1000 + rng.below(40))),
            _ => Some(format!(
                "{:08x}-{:04x}",
                rng.next() as u32,
                rng.below(1 << 16)
            )),
        };
        out.push(Version {
            timestamp: ts,
            value: value(model.kinds[p], rng, object),
            source_type,
            source_id,
            source_label: if rng.below(5) == 0 {
                Some(*rng.pick(&["Jane Doe", "Import 2024", "Zapier"]))
            } else {
                None
            },
            updated_by: if rng.below(3) == 0 {
                Some(1000 + rng.below(40) as i64)
            } else {
                None
            },
        });
        ts -= 60_000 + rng.below(30 * 86_400_000) as i64;
    }
    // Calculated properties keep a version at timestamp 0 now and then.
    if n > 1 && rng.below(100) == 0 {
        out.last_mut().expect("n > 1").timestamp = 0;
    }
    true
}

/// What the dialect keeps of a version (v1 deals have no label or user).
pub(crate) fn as_read(dialect: Dialect, v: &Version) -> (Option<&str>, Option<&str>, Option<i64>) {
    match dialect {
        Dialect::V1Deals => (v.source_id.as_deref(), None, None),
        _ => (v.source_id.as_deref(), v.source_label, v.updated_by),
    }
}

/// The row skewer should read back from version `v` of object `id`, written in `dialect`
/// with its source fields or (`sources` false: Parquet without them, and their events)
/// without.
pub(crate) fn read_back(id: i64, v: &Version, dialect: Dialect, sources: bool) -> Row<'_> {
    let (source_id, source_label, updated_by) = as_read(dialect, v);
    fn keep(s: Option<&str>, sources: bool) -> Option<&[u8]> {
        s.filter(|_| sources).map(str::as_bytes)
    }
    Row {
        object_id: id,
        timestamp: v.timestamp,
        value: v.value.as_deref().map(str::as_bytes),
        source_type: keep(v.source_type, sources),
        source_id: keep(source_id, sources),
        source_label: keep(source_label, sources),
        updated_by_user_id: updated_by.filter(|_| sources),
    }
}

/// The id of object number `i` (increasing, above 2³¹, not contiguous).
pub(crate) fn object_id(i: u64) -> i64 {
    FIRST_ID + (i as i64) * 7 + (planner::fmix64(i) % 5) as i64
}

/// Writes the dump and its answer key (`_expected.json`) into `config.out`. With
/// `config.increments` N > 0, a series instead, each folder with its answer key:
///
/// ```text
/// out/base/             the base dump (what the same options write without increments)
/// out/inc-001/ … N      an increment: its changed and new objects' full records (histories
///                       as of then), in the dump's format; events.ndjson: the other changes
///                       as webhook property-change events, and the deletions as deletion,
///                       privacy-deletion and merge events; _deleted-objects.txt: the
///                       deletions again as ids (for --delete-objects)
/// out/final/            the state after the last increment, as one full dump
/// ```
///
/// Merging `base/` and then each increment in order gives exactly the rows of a run over
/// `final/`. Returns the answer key of `out` (or of `final/`).
pub fn generate(config: &GenConfig) -> Result<Expected> {
    if config.files == 0 || config.properties == 0 {
        return Err(Error::Config(
            "--files and --properties must be at least 1".into(),
        ));
    }
    let model = Model::new(config.properties, config.hot_share);
    if config.increments == 0 {
        let objects: Vec<u64> = (0..config.objects).collect();
        let timeline = Timeline::base(config.seed, config.objects);
        return write_dump(config, &model, &timeline, &config.out, 0, &objects);
    }
    for (name, rate) in [
        ("--change-rate", config.change_rate),
        ("--delete-rate", config.delete_rate),
    ] {
        if !(0.0..=1.0).contains(&rate) {
            return Err(Error::Config(format!(
                "{name} {rate} is not a share between 0 and 1"
            )));
        }
    }
    let timeline = Timeline {
        seed: config.seed,
        objects: config.objects,
        new_per_step: (config.objects as f64 * config.change_rate / 2.0).round() as u64,
        change_rate: config.change_rate,
        delete_rate: config.delete_rate,
    };
    let base: Vec<u64> = (0..config.objects).collect();
    write_dump(
        config,
        &model,
        &timeline,
        &config.out.join("base"),
        0,
        &base,
    )?;
    for step in 1..=config.increments {
        let (mut records, mut events, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..timeline.known(step) {
            match timeline.change(i, step) {
                Change::Record => records.push(i),
                Change::Events => events.push(i),
                Change::Deleted => deleted.push(i),
                Change::None => {}
            }
        }
        let dir = config.out.join(format!("inc-{step:03}"));
        let mut key = write_dump(config, &model, &timeline, &dir, step, &records)?;
        let (lines, sum) = write_events(config, &model, &timeline, &dir, step, &events, &deleted)?;
        key.records += lines;
        key.checksum.merge(sum);
        key.rows = key.checksum.rows;
        write_key(&dir, &key)?;
    }
    let last = config.increments;
    let alive: Vec<u64> = (0..timeline.known(last))
        .filter(|&i| timeline.alive(i, last))
        .collect();
    write_dump(
        config,
        &model,
        &timeline,
        &config.out.join("final"),
        last,
        &alive,
    )
}

/// Writes `objects` (indices) as of step `step` into `dir` as a dump with its answer key.
fn write_dump(
    config: &GenConfig,
    model: &Model,
    timeline: &Timeline,
    dir: &Path,
    step: u32,
    objects: &[u64],
) -> Result<Expected> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let files = config.files.min(objects.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<Checksum>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..config.threads.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let f = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if f >= files {
                            return Ok(done);
                        }
                        let from = objects.len() * f / files;
                        let to = objects.len() * (f + 1) / files;
                        let part = Part {
                            timeline,
                            step,
                            path: file_name(config, dir, f),
                            objects: &objects[from..to],
                        };
                        done.push(match config.format {
                            Format::Ndjson => write_ndjson(config, model, &part)?,
                            Format::Parquet => parquet::write(config, model, &part)?,
                        });
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Bug("a generator thread panicked".into())))
            })
            .collect()
    });
    let mut checksum = Checksum::default();
    for r in results {
        for c in r? {
            checksum.merge(c);
        }
    }
    let expected = Expected {
        records: objects.len() as u64,
        rows: checksum.rows,
        checksum,
        dialect: config.dialect,
        format: config.format,
        objects: objects.len() as u64,
        properties: config.properties,
        files,
        seed: config.seed,
    };
    write_key(dir, &expected)?;
    Ok(expected)
}

fn write_key(dir: &Path, expected: &Expected) -> Result<()> {
    let json = serde_json::to_vec_pretty(expected).map_err(|e| Error::Bug(e.to_string()))?;
    crate::store::local::write_atomic(&dir.join(EXPECTED_FILE), &json)
}

/// One data file to write: which objects, as of which step.
pub(crate) struct Part<'a> {
    pub(crate) timeline: &'a Timeline,
    pub(crate) step: u32,
    pub(crate) path: PathBuf,
    pub(crate) objects: &'a [u64],
}

fn file_name(config: &GenConfig, dir: &Path, f: usize) -> PathBuf {
    let ext = match (config.format, config.gzip) {
        (Format::Ndjson, false) => "ndjson",
        (Format::Ndjson, true) => "ndjson.gz",
        (Format::Parquet, _) => "parquet",
    };
    dir.join(format!("{}-{f:05}.{ext}", object_kind(config.dialect).1))
}

/// The object type's name in webhook subscriptions and in file names.
fn object_kind(dialect: Dialect) -> (&'static str, &'static str) {
    match dialect {
        Dialect::V1 | Dialect::V3 => ("contact", "contacts"),
        Dialect::V1Deals => ("deal", "deals"),
    }
}

/// An increment's webhook events (`events.ndjson`): a property-change event per version the
/// step added to each of `changed`, then a deletion, privacy-deletion or merge event per
/// object of `deleted`; and the same deletions as ids in `_deleted-objects.txt`. Returns the
/// events written and the rows they carry.
fn write_events(
    config: &GenConfig,
    model: &Model,
    timeline: &Timeline,
    dir: &Path,
    step: u32,
    changed: &[u64],
    deleted: &[u64],
) -> Result<(u64, Checksum)> {
    let path = dir.join("events.ndjson");
    let io = |e| Error::io(&path, e);
    let mut w = BufWriter::new(File::create(&path).map_err(io)?);
    let (kind, _) = object_kind(config.dialect);
    // Parquet dumps without sources carry none: nor may the events of the same versions.
    let sources = config.format == Format::Ndjson || config.parquet_sources;
    let mut sum = Checksum::default();
    let mut lines = 0u64;
    let mut added = Vec::new();
    for &i in changed {
        let id = object_id(i);
        added.clear();
        timeline.added(model, i, step, &mut added);
        for (p, v) in &added {
            let name = &model.names[*p];
            let source = |s: Option<&str>| -> serde_json::Value {
                s.filter(|_| sources)
                    .map_or(serde_json::Value::Null, Into::into)
            };
            let mut event = serde_json::json!({
                "eventId": lines + 1,
                "subscriptionId": 1,
                "portalId": PORTAL,
                "occurredAt": v.timestamp,
                "subscriptionType": format!("{kind}.propertyChange"),
                "attemptNumber": 0,
                "objectId": id,
                "propertyName": name,
                "propertyValue": v.value,
            });
            if sources {
                event["changeSource"] = source(v.source_type);
                event["sourceId"] = source(v.source_id.as_deref());
            }
            serde_json::to_writer(&mut w, &event).map_err(|e| io(e.into()))?;
            w.write_all(b"\n").map_err(io)?;
            lines += 1;
            // Versions an increment adds have no label or user: as an event carries them.
            sum.add(name, &read_back(id, v, config.dialect, sources));
        }
    }
    let mut ids = format!("# objects deleted by increment {step}\n");
    let occurred = NOW_MS + i64::from(step) * 86_400_000 + 43_200_000;
    for &i in deleted {
        let id = object_id(i);
        ids.push_str(&format!("{id}\n"));
        let mut event = serde_json::json!({
            "eventId": lines + 1,
            "subscriptionId": 2,
            "portalId": PORTAL,
            "occurredAt": occurred,
            "attemptNumber": 0,
        });
        match i % 5 {
            0 => {
                event["subscriptionType"] = format!("{kind}.privacyDeletion").into();
                event["objectId"] = id.into();
            }
            1 => {
                // Merged into another object, which keeps its id.
                let primary = object_id(0);
                event["subscriptionType"] = format!("{kind}.merge").into();
                event["objectId"] = primary.into();
                event["primaryObjectId"] = primary.into();
                event["mergedObjectIds"] = serde_json::json!([id]);
                event["newObjectId"] = primary.into();
                event["numberOfPropertiesMoved"] = 0.into();
            }
            _ => {
                event["subscriptionType"] = format!("{kind}.deletion").into();
                event["objectId"] = id.into();
                event["changeFlag"] = "DELETED".into();
            }
        }
        serde_json::to_writer(&mut w, &event).map_err(|e| io(e.into()))?;
        w.write_all(b"\n").map_err(io)?;
        lines += 1;
    }
    w.flush().map_err(io)?;
    crate::store::local::write_atomic(&dir.join("_deleted-objects.txt"), ids.as_bytes())?;
    Ok((lines, sum))
}

fn write_ndjson(config: &GenConfig, model: &Model, part: &Part<'_>) -> Result<Checksum> {
    let path = &part.path;
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let io = |e| Error::io(path, e);
    let mut sum = Checksum::default();
    let mut buffers = Buffers::default();
    let mut record = |i: u64, w: &mut dyn Write, sum: &mut Checksum| {
        write_record(config.dialect, model, part, i, &mut buffers, w, sum)
    };
    if config.gzip {
        let mut w = flate2::write::GzEncoder::new(
            BufWriter::with_capacity(1 << 20, file),
            flate2::Compression::fast(),
        );
        for &i in part.objects {
            record(i, &mut w, &mut sum).map_err(io)?;
        }
        w.finish().and_then(|mut b| b.flush()).map_err(io)?;
    } else {
        let mut w = BufWriter::with_capacity(1 << 20, file);
        for &i in part.objects {
            record(i, &mut w, &mut sum).map_err(io)?;
        }
        w.flush().map_err(io)?;
    }
    Ok(sum)
}

fn json_str(w: &mut dyn Write, s: &str) -> std::io::Result<()> {
    serde_json::to_writer(&mut *w, s).map_err(std::io::Error::other)
}

fn json_opt(w: &mut dyn Write, s: Option<&str>) -> std::io::Result<()> {
    match s {
        Some(s) => json_str(w, s),
        None => w.write_all(b"null"),
    }
}

/// One object as a line of NDJSON in the dialect's shape; adds its rows to `sum`.
fn write_record(
    dialect: Dialect,
    model: &Model,
    part: &Part<'_>,
    i: u64,
    buffers: &mut Buffers,
    w: &mut dyn Write,
    sum: &mut Checksum,
) -> std::io::Result<()> {
    let id = object_id(i);
    match dialect {
        Dialect::V1 => write!(
            w,
            "{{\"vid\":{id},\"canonical-vid\":{id},\"portal-id\":{PORTAL},\"is-contact\":true,\"properties\":{{"
        )?,
        Dialect::V1Deals => write!(
            w,
            "{{\"portalId\":{PORTAL},\"dealId\":{id},\"isDeleted\":false,\"properties\":{{"
        )?,
        Dialect::V3 => write!(w, "{{\"id\":\"{id}\",\"propertiesWithHistory\":{{")?,
    }
    let mut current: Vec<(usize, Option<String>)> = Vec::new();
    let mut first = true;
    part.timeline.histories(
        model,
        i,
        part.step,
        buffers,
        |p, vs| -> std::io::Result<()> {
            if !first {
                w.write_all(b",")?;
            }
            first = false;
            let name = &model.names[p];
            json_str(w, name)?;
            match dialect {
                Dialect::V1 | Dialect::V1Deals => {
                    w.write_all(b":{\"value\":")?;
                    json_opt(w, vs[0].value.as_deref())?;
                    w.write_all(b",\"versions\":[")?;
                }
                Dialect::V3 => {
                    w.write_all(b":[")?;
                    current.push((p, vs[0].value.clone()));
                }
            }
            for (k, v) in vs.iter().enumerate() {
                if k > 0 {
                    w.write_all(b",")?;
                }
                write_version(dialect, name, v, w)?;
                sum.add(name, &read_back(id, v, dialect, true));
            }
            match dialect {
                Dialect::V1 | Dialect::V1Deals => w.write_all(b"]}"),
                Dialect::V3 => w.write_all(b"]"),
            }
        },
    )?;
    w.write_all(b"}")?;
    if dialect == Dialect::V3 {
        // v3 also carries current values, which are not history and must not be exploded.
        w.write_all(b",\"properties\":{")?;
        write!(w, "\"hs_object_id\":\"{id}\"")?;
        for (p, v) in &current {
            w.write_all(b",")?;
            json_str(w, &model.names[*p])?;
            w.write_all(b":")?;
            json_opt(w, v.as_deref())?;
        }
        w.write_all(b"},\"archived\":false")?;
    }
    w.write_all(b"}\n")
}

fn write_version(
    dialect: Dialect,
    name: &str,
    v: &Version,
    w: &mut dyn Write,
) -> std::io::Result<()> {
    match dialect {
        Dialect::V1 => {
            w.write_all(b"{\"value\":")?;
            json_opt(w, v.value.as_deref())?;
            w.write_all(b",\"source-type\":")?;
            json_opt(w, v.source_type)?;
            w.write_all(b",\"source-id\":")?;
            json_opt(w, v.source_id.as_deref())?;
            if let Some(label) = v.source_label {
                w.write_all(b",\"source-label\":")?;
                json_str(w, label)?;
            }
            if let Some(u) = v.updated_by {
                write!(w, ",\"updated-by-user-id\":{u}")?;
            }
            write!(w, ",\"timestamp\":{},\"selected\":false}}", v.timestamp)
        }
        Dialect::V1Deals => {
            w.write_all(b"{\"name\":")?;
            json_str(w, name)?;
            w.write_all(b",\"value\":")?;
            json_opt(w, v.value.as_deref())?;
            write!(w, ",\"timestamp\":{},\"source\":", v.timestamp)?;
            json_opt(w, v.source_type)?;
            w.write_all(b",\"sourceId\":")?;
            json_opt(w, v.source_id.as_deref())?;
            w.write_all(b",\"sourceVid\":[]}")
        }
        Dialect::V3 => {
            w.write_all(b"{\"value\":")?;
            json_opt(w, v.value.as_deref())?;
            write!(
                w,
                ",\"timestamp\":\"{}\",\"sourceType\":",
                iso_ms(v.timestamp)
            )?;
            json_opt(w, v.source_type)?;
            w.write_all(b",\"sourceId\":")?;
            json_opt(w, v.source_id.as_deref())?;
            if let Some(label) = v.source_label {
                w.write_all(b",\"sourceLabel\":")?;
                json_str(w, label)?;
            }
            if let Some(u) = v.updated_by {
                write!(w, ",\"updatedByUserId\":{u}")?;
            }
            w.write_all(b"}")
        }
    }
}

/// `2026-11-20T10:00:00.123Z`, as the v3 API writes times.
fn iso_ms(ms: i64) -> String {
    let secs = crate::units::format_utc(ms);
    format!("{}.{:03}Z", secs.trim_end_matches('Z'), ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_model_is_skewed_like_a_real_portal() {
        let m = Model::new(1280, None);
        let expected: Vec<f64> = (0..1280)
            .map(|p| m.presence[p] * m.mean_versions[p])
            .collect();
        let total: f64 = expected.iter().sum();
        let top20: f64 = expected[..20].iter().sum();
        assert!((total - ROWS_PER_OBJECT).abs() < 1.0, "{total}");
        assert!((0.88..0.92).contains(&(top20 / total)), "{}", top20 / total);
    }

    #[test]
    fn a_hot_property_takes_its_share() {
        let m = Model::new(300, Some(0.6));
        let rows: Vec<f64> = (0..300)
            .map(|p| m.presence[p] * m.mean_versions[p])
            .collect();
        let share = rows[0] / rows.iter().sum::<f64>();
        assert!((share - 0.6).abs() < 0.01, "{share}");
    }

    #[test]
    fn iso_times_parse_back() {
        for ms in [0, 1_795_132_800_123, 1_700_000_000_001] {
            assert_eq!(
                crate::explode::timestamp::parse(iso_ms(ms).as_bytes()),
                Some(ms)
            );
        }
    }
}
