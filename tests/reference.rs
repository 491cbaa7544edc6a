//! A deliberately naive explode (serde_json::Value, one field at a time), the reference the
//! real one is checked against, and seeded random records in every dialect.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A row as plain owned data: (property, object, timestamp, value, source_type, source_id,
/// source_label, updated_by).
pub type Flat = (
    String,
    i64,
    i64,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<i64>,
);

fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// ISO times go through the planner's strict RFC 3339 parser, an implementation separate
/// from the explode's lenient one.
fn millis(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().expect("integral ms"),
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().unwrap(),
        Value::String(s) => planner::parse_rfc3339_ms(s).expect("ISO time"),
        _ => panic!("timestamp {v}"),
    }
}

fn id(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        _ => panic!("id {v}"),
    }
}

/// Explodes one record the slow, obvious way.
pub fn explode_record(record: &Value) -> Vec<Flat> {
    let obj = record.as_object().expect("a record is an object");
    let object = [
        "vid",
        "canonical-vid",
        "dealId",
        "companyId",
        "id",
        "objectId",
    ]
    .iter()
    .find_map(|k| obj.get(*k))
    .map(id)
    .expect("an id");
    let mut rows = Vec::new();
    let version = |name: &str, v: &Value, rows: &mut Vec<Flat>| {
        let pick = |keys: &[&str]| keys.iter().find_map(|k| v.get(*k));
        rows.push((
            name.to_string(),
            object,
            millis(&v["timestamp"]),
            text(v.get("value")),
            text(pick(&[
                "source-type",
                "source",
                "sourceType",
                "changeSource",
            ])),
            text(pick(&["source-id", "sourceId"])),
            text(pick(&["source-label", "sourceLabel"])),
            pick(&["updated-by-user-id", "updatedByUserId"]).and_then(Value::as_i64),
        ));
    };
    if let Some(Value::Object(props)) = obj.get("properties") {
        for (name, p) in props {
            if let Some(Value::Array(vs)) = p.get("versions") {
                for v in vs {
                    version(name, v, &mut rows);
                }
            }
        }
    }
    if let Some(Value::Object(hist)) = obj.get("propertiesWithHistory") {
        for (name, vs) in hist {
            for v in vs.as_array().expect("versions") {
                version(name, v, &mut rows);
            }
        }
    }
    rows
}

/// Every record in an NDJSON text.
pub fn explode_ndjson(text: &str) -> Vec<Flat> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .flat_map(|l| explode_record(&serde_json::from_str(l).unwrap()))
        .collect()
}

/// SplitMix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        planner::fmix64(self.0)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const NAMES: &[&str] = &[
    "email",
    "a/b",
    "x=y",
    "..",
    "ünï 🚀",
    "50%",
    "lifecyclestage",
    "hs_object_id",
];
const VALUES: &[&str] = &[
    "",
    "plain",
    "quote\"d",
    "new\nline",
    "tab\t",
    "back\\slash",
    "é😀",
    "0",
];

fn random_value(rng: &mut Rng) -> Value {
    match rng.below(10) {
        0 => Value::Null,
        1 => json!(rng.below(1000)),
        2 => json!(rng.below(2) == 0),
        _ => json!(VALUES[rng.below(VALUES.len() as u64) as usize]),
    }
}

/// A random record in dialect `d` (0 v1, 1 v1 deals, 2 v3) with 0–5 properties.
pub fn random_record(rng: &mut Rng, d: u64, object: i64) -> Value {
    let mut props = BTreeMap::new();
    for _ in 0..rng.below(6) {
        let name = NAMES[rng.below(NAMES.len() as u64) as usize];
        let mut versions = Vec::new();
        for _ in 0..rng.below(4) {
            // v3 writes ISO times (whole seconds here); v1 epoch ms as numbers or digit strings.
            let ts = if d == 2 {
                rng.below(2_000_000_000) as i64 * 1000
            } else {
                rng.below(2_000_000_000_000) as i64
            };
            let timestamp = match (d, rng.below(3)) {
                (2, _) => json!(skewer::units::format_utc(ts)),
                (_, 0) => json!(ts.to_string()),
                _ => json!(ts),
            };
            let mut v = serde_json::Map::new();
            v.insert("value".into(), random_value(rng));
            v.insert("timestamp".into(), timestamp);
            let source = ["CRM_UI", "API", "FORM"][rng.below(3) as usize];
            match d {
                0 => {
                    v.insert("source-type".into(), json!(source));
                    if rng.below(2) == 0 {
                        v.insert("source-id".into(), random_value(rng));
                    }
                    if rng.below(3) == 0 {
                        v.insert("updated-by-user-id".into(), json!(rng.below(100)));
                    }
                }
                1 => {
                    v.insert("source".into(), json!(source));
                    v.insert("sourceId".into(), random_value(rng));
                }
                _ => {
                    v.insert("sourceType".into(), json!(source));
                    v.insert("sourceLabel".into(), random_value(rng));
                    if rng.below(3) == 0 {
                        v.insert("updatedByUserId".into(), json!(rng.below(100)));
                    }
                }
            }
            versions.push(Value::Object(v));
        }
        props.insert(name.to_string(), versions);
    }
    match d {
        0 => json!({"vid": object, "portal-id": 1, "properties":
            props.into_iter().map(|(k, vs)| (k, json!({"value": "cur", "versions": vs}))).collect::<serde_json::Map<_, _>>()}),
        1 => json!({"dealId": object, "portalId": 1, "properties":
            props.into_iter().map(|(k, vs)| (k, json!({"versions": vs}))).collect::<serde_json::Map<_, _>>()}),
        _ => json!({"id": object.to_string(), "properties": {"email": "current"},
            "propertiesWithHistory": props}),
    }
}
