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

/// `YYYY-MM-DDTHH:MM:SS[.fff]Z` by counting days year by year and month by month: slow and
/// obviously right, and independent of the calendar arithmetic under test.
fn slow_utc_ms(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut days = 0;
    for year in 1970..y {
        days += if leap(year) { 366 } else { 365 };
    }
    let lengths = [
        31,
        if leap(y) { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    days += lengths[..(m - 1) as usize].iter().sum::<i64>() + d - 1;
    let millis = if s.as_bytes()[19] == b'.' {
        n(20, 23)
    } else {
        0
    };
    ((days * 24 + n(11, 13)) * 60 + n(14, 16)) * 60_000 + n(17, 19) * 1000 + millis
}

fn millis(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().expect("integral ms"),
        Value::String(s) if s.bytes().all(|b| b.is_ascii_digit()) => s.parse().unwrap(),
        Value::String(s) => slow_utc_ms(s),
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

/// Explodes a nested Parquet dump through the parquet crate's own record assembly (its row
/// API), a path independent of skewer's level walking. Struct and map forms.
pub fn explode_parquet(path: &std::path::Path) -> Vec<Flat> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::{Field, Row};

    fn text(f: &Field) -> Option<String> {
        match f {
            Field::Null => None,
            Field::Str(s) => Some(s.clone()),
            other => Some(other.to_string()),
        }
    }
    fn versions(name: &str, object: i64, property: &Row, out: &mut Vec<Flat>) {
        for (key, f) in property.get_column_iter() {
            let Field::ListInternal(list) = f else {
                continue;
            };
            if key != "versions" {
                continue;
            }
            for element in list.elements() {
                let Field::Group(v) = element else {
                    panic!("a version is a struct")
                };
                let mut row: Flat = (name.into(), object, 0, None, None, None, None, None);
                for (k, f) in v.get_column_iter() {
                    match (k.as_str(), f) {
                        ("value", f) => row.3 = text(f),
                        ("timestamp", Field::Long(t)) => row.2 = *t,
                        ("source-type", f) => row.4 = text(f),
                        ("source-id", f) => row.5 = text(f),
                        ("source-label", f) => row.6 = text(f),
                        ("updated-by-user-id", Field::Long(u)) => row.7 = Some(*u),
                        _ => {}
                    }
                }
                out.push(row);
            }
        }
    }

    let reader = SerializedFileReader::new(std::fs::File::open(path).unwrap()).unwrap();
    let mut out = Vec::new();
    for row in reader.get_row_iter(None).unwrap() {
        let row = row.unwrap();
        let mut object = None;
        let mut properties = None;
        for (name, f) in row.get_column_iter() {
            match (name.as_str(), f) {
                ("vid" | "dealId", Field::Long(i)) => object = Some(*i),
                ("id", Field::Str(s)) => object = Some(s.parse().unwrap()),
                ("properties", f) => properties = Some(f.clone()),
                _ => {}
            }
        }
        let object = object.expect("an id");
        match properties {
            Some(Field::Group(props)) => {
                for (name, p) in props.get_column_iter() {
                    if let Field::Group(p) = p {
                        versions(name, object, p, &mut out);
                    }
                }
            }
            Some(Field::MapInternal(map)) => {
                for (k, v) in map.entries() {
                    if let (Field::Str(name), Field::Group(p)) = (k, v) {
                        versions(name, object, p, &mut out);
                    }
                }
            }
            _ => {}
        }
    }
    out
}
