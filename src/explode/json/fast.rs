//! The common record, read without serde: a hand-written scanner for the shape nearly every
//! line of an API dump has, falling back to the general parser for anything else.
//!
//! Takes one JSON text (an NDJSON line, already checked to be UTF-8) and reads it if it is
//! exactly one v1 record: an object whose id is under `vid`, `canonical-vid`, `dealId` or
//! `companyId` and whose histories are under `properties.<name>.versions[]`, with values,
//! sources, users and timestamps of the usual types. The scanner drives the same
//! [`RecordBuilder`] calls, in the same order, as the serde visitors do, so what it gives
//! the sink is the same rows, rejects and counts.
//!
//! Invariant: it either reads the whole text and hands its record to the sink, or hands the
//! sink nothing and returns `false` (the caller then parses the text the general way, which
//! restarts the builder). It returns `false` on anything it does not handle exactly as
//! serde_json and the visitors would: another dialect or page, a key with an escape, a
//! `\u` escape, a timestamp or user id of an unusual type, a value the visitors would reject
//! with a message, invalid JSON, a nesting deeper than [`MAX_DEPTH`], more than one value.
//! So a text the fast path takes is valid JSON, and any text it does not is read as before.

use super::{JsonContext, ObjectIds, StrField, raw_id, text_into, timestamp};
use crate::explode::MAX_VALUE_BYTES;

/// Nesting the scanner follows in values it skips; deeper texts go the general way (whose
/// limit, serde_json's, is 128).
const MAX_DEPTH: u32 = 100;

/// `None`: not a text this scanner takes.
type Fast<T> = Option<T>;

/// Reads `text` as one v1 record into `ctx`'s sink; `false` if it is not one it takes, in
/// which case the sink has been given nothing.
pub(super) fn explode_text(text: &str, ctx: &mut JsonContext<'_>) -> bool {
    if ctx.mark.is_some() {
        return false;
    }
    let mut s = Scanner {
        text,
        b: text.as_bytes(),
        i: 0,
    };
    // The webhook state is left as it was: the scanner takes no webhook field, and the
    // visitors clear it for every record they read.
    ctx.builder.begin();
    let Some(ids) = record(&mut s, ctx) else {
        return false;
    };
    s.ws();
    if s.i != s.b.len() {
        return false;
    }
    // Only now does the sink hear of the record: a text that is more than one value is left
    // whole to the general parser.
    ctx.started = true;
    let index = ctx.records;
    ctx.records += 1;
    ctx.builder.finish(ids.resolve(), index, &mut *ctx.sink);
    if ctx.limit.is_some_and(|limit| ctx.records >= limit) {
        ctx.stopped = true;
    }
    true
}

struct Scanner<'t> {
    /// The text; slices of it are cut at ASCII bytes (quotes, delimiters), so they are UTF-8
    /// without checking again.
    text: &'t str,
    b: &'t [u8],
    i: usize,
}

/// Bytes that end a run of plain string content: the quote, the backslash and the control
/// characters JSON forbids in strings.
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

impl<'t> Scanner<'t> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    fn peek(&mut self) -> Fast<u8> {
        self.ws();
        self.b.get(self.i).copied()
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Fast<()> {
        (self.peek()? == c).then(|| self.i += 1)
    }

    /// After a member or element: `true` at `close` (consumed), `false` after a `,`.
    #[inline]
    fn next_or_close(&mut self, close: u8) -> Fast<bool> {
        match self.peek()? {
            b',' => {
                self.i += 1;
                Some(false)
            }
            c if c == close => {
                self.i += 1;
                Some(true)
            }
            _ => None,
        }
    }

    /// `true` if the object or array just opened is empty (its `close` consumed).
    #[inline]
    fn empty(&mut self, close: u8) -> Fast<bool> {
        if self.peek()? == close {
            self.i += 1;
            return Some(true);
        }
        Some(false)
    }

    /// A string at the cursor: its body (between the quotes) and whether it holds an escape.
    /// Escapes other than `\u` are checked here; control characters and `\u` are not taken.
    #[inline]
    fn string(&mut self) -> Fast<(&'t str, bool)> {
        if self.peek()? != b'"' {
            return None;
        }
        let start = self.i + 1;
        let mut i = start;
        let mut escaped = false;
        loop {
            i = plain_run(self.b, i);
            let c = *self.b.get(i)?;
            if !SPECIAL[c as usize] {
                i += 1;
                continue;
            }
            match c {
                b'"' => {
                    self.i = i + 1;
                    return Some((&self.text[start..i], escaped));
                }
                b'\\' => match self.b.get(i + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                        escaped = true;
                        i += 2;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// A key and its `:`; keys with escapes are not taken.
    #[inline]
    fn key(&mut self) -> Fast<&'t str> {
        let (key, escaped) = self.string()?;
        if escaped {
            return None;
        }
        self.eat(b':')?;
        Some(key)
    }

    /// A number at the cursor, in JSON's grammar: its text, and whether it is an integer.
    fn number(&mut self) -> Fast<(&'t str, bool)> {
        self.ws();
        let b = self.b;
        let start = self.i;
        let mut i = start;
        let digits = |i: &mut usize| {
            let from = *i;
            while b.get(*i).is_some_and(u8::is_ascii_digit) {
                *i += 1;
            }
            *i > from
        };
        if b.get(i) == Some(&b'-') {
            i += 1;
        }
        match b.get(i)? {
            b'0' => i += 1,
            b'1'..=b'9' => {
                digits(&mut i);
            }
            _ => return None,
        }
        let mut integer = true;
        if b.get(i) == Some(&b'.') {
            i += 1;
            if !digits(&mut i) {
                return None;
            }
            integer = false;
        }
        if let Some(b'e' | b'E') = b.get(i) {
            i += 1;
            if let Some(b'+' | b'-') = b.get(i) {
                i += 1;
            }
            if !digits(&mut i) {
                return None;
            }
            integer = false;
        }
        self.i = i;
        Some((&self.text[start..i], integer))
    }

    /// `true`, `false` or `null` at the cursor, consumed.
    fn literal(&mut self, word: &[u8]) -> Fast<()> {
        self.ws();
        self.b[self.i..]
            .starts_with(word)
            .then(|| self.i += word.len())
    }

    /// Any value, checked and passed over.
    fn skip(&mut self, depth: u32) -> Fast<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' => {
                self.i += 1;
                if depth >= MAX_DEPTH {
                    return None;
                }
                if self.empty(b'}')? {
                    return Some(());
                }
                loop {
                    self.string()?;
                    self.eat(b':')?;
                    self.skip(depth + 1)?;
                    if self.next_or_close(b'}')? {
                        return Some(());
                    }
                }
            }
            b'[' => {
                self.i += 1;
                if depth >= MAX_DEPTH {
                    return None;
                }
                if self.empty(b']')? {
                    return Some(());
                }
                loop {
                    self.skip(depth + 1)?;
                    if self.next_or_close(b']')? {
                        return Some(());
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(drop),
        }
    }

    /// A scalar's raw text (a string with its quotes, a number, a literal); objects and
    /// arrays are not taken.
    fn raw_scalar(&mut self) -> Fast<&'t str> {
        let start = {
            self.ws();
            self.i
        };
        match self.b.get(self.i)? {
            b'"' => {
                self.string()?;
            }
            b't' => self.literal(b"true")?,
            b'f' => self.literal(b"false")?,
            b'n' => self.literal(b"null")?,
            b'{' | b'[' => return None,
            _ => {
                self.number()?;
            }
        }
        Some(&self.text[start..self.i])
    }

    /// An integer that fits `i64`.
    fn int(&mut self) -> Fast<i64> {
        let (text, integer) = self.number()?;
        // serde_json reads `-0` as a float.
        if !integer || text == "-0" {
            return None;
        }
        text.parse().ok()
    }
}

/// The end of the run of plain string content (no quote, backslash or control character)
/// from `i`, eight bytes at a time: most strings are a few dozen bytes, too short for a
/// vectorised search's set-up to pay, too long for a byte at a time.
#[inline]
fn plain_run(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte of `x` is zero: its high bit in the result (exact for the lowest such byte).
    let zero = |x: u64| x.wrapping_sub(ONES) & !x & HIGHS;
    while let Some(chunk) = b.get(i..i + 8) {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let special = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGHS);
        if special != 0 {
            return i + (special.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while b.get(i).is_some_and(|&c| !SPECIAL[c as usize]) {
        i += 1;
    }
    i
}

/// A record's members; the ids it offered.
fn record(s: &mut Scanner<'_>, ctx: &mut JsonContext<'_>) -> Fast<ObjectIds> {
    s.eat(b'{')?;
    let mut ids = ObjectIds::default();
    if s.empty(b'}')? {
        return Some(ids);
    }
    loop {
        match s.key()?.as_bytes() {
            b"vid" => ids.offer(0, object_id(s)?),
            b"canonical-vid" => ids.offer(1, object_id(s)?),
            b"dealId" => ids.offer(2, object_id(s)?),
            b"companyId" => ids.offer(3, object_id(s)?),
            b"properties" => properties(s, ctx, &mut ids)?,
            key if other_record_key(key) => s.skip(1)?,
            _ => return None,
        }
        if s.next_or_close(b'}')? {
            return Some(ids);
        }
    }
}

/// Whether a record key is one the general parser ignores too (not an id, a page, a
/// webhook field or a record keyed by its id).
fn other_record_key(key: &[u8]) -> bool {
    let keyed = !key.is_empty() && key.iter().all(u8::is_ascii_digit);
    let named = matches!(
        key,
        b"results"
            | b"contacts"
            | b"deals"
            | b"companies"
            | b"id"
            | b"objectId"
            | b"propertiesWithHistory"
            | b"propertyName"
            | b"propertyValue"
            | b"occurredAt"
            | b"changeSource"
            | b"sourceId"
            | b"eventId"
            | b"changeFlag"
            | b"subscriptionType"
            | b"eventType"
            | b"mergedObjectIds"
            | b"primaryObjectId"
            | b"newObjectId"
            | b"objectTypeId"
    );
    !(keyed || named)
}

/// An object id as the visitors read it (from its raw text); ids they would reject are not
/// taken, so their message comes from them.
fn object_id(s: &mut Scanner<'_>) -> Fast<Result<i64, String>> {
    raw_id(s.raw_scalar()?).ok().map(Ok)
}

fn properties(s: &mut Scanner<'_>, ctx: &mut JsonContext<'_>, ids: &mut ObjectIds) -> Fast<()> {
    s.eat(b'{')?;
    if s.empty(b'}')? {
        return Some(());
    }
    loop {
        let name = s.key()?;
        let is_id = name == "hs_object_id";
        let property = ctx.ids.id(name);
        if let Some(id) = property_value(s, ctx, property, is_id)? {
            ids.hs_object_id = Some(id);
        }
        if s.next_or_close(b'}')? {
            return Some(());
        }
    }
}

/// `{"value": …, "versions": […], "timestamp": …}`, as `PropertyValue::visit_map` reads it.
fn property_value(
    s: &mut Scanner<'_>,
    ctx: &mut JsonContext<'_>,
    property: u32,
    capture_id: bool,
) -> Fast<Option<Result<i64, String>>> {
    s.eat(b'{')?;
    let mut id = None;
    let mut timestamp = None;
    let (mut value, mut versions) = (false, false);
    if !s.empty(b'}')? {
        loop {
            match s.key()?.as_bytes() {
                b"versions" => {
                    versions = true;
                    version_array(s, ctx, property)?;
                }
                b"value" if capture_id => id = Some(object_id(s)?),
                b"value" => {
                    if s.peek()? == b'n' {
                        s.literal(b"null")?;
                    } else {
                        s.skip(1)?;
                        value = true;
                    }
                }
                b"timestamp" => timestamp = Some(Ok(time(s)?)),
                _ => s.skip(1)?,
            }
            if s.next_or_close(b'}')? {
                break;
            }
        }
    }
    if value && !versions {
        ctx.builder.note_value();
    }
    let (names, builder) = (&*ctx.ids, &mut *ctx.builder);
    builder.end_property(timestamp.as_ref(), || names.name(property));
    Some(id)
}

fn version_array(s: &mut Scanner<'_>, ctx: &mut JsonContext<'_>, property: u32) -> Fast<()> {
    if s.peek()? == b'n' {
        return s.literal(b"null");
    }
    s.eat(b'[')?;
    if s.empty(b']')? {
        return Some(());
    }
    loop {
        version(s, ctx, property)?;
        if s.next_or_close(b']')? {
            return Some(());
        }
    }
}

/// One version object → one row, as `Version::visit_map` writes it.
fn version(s: &mut Scanner<'_>, ctx: &mut JsonContext<'_>, property: u32) -> Fast<()> {
    s.eat(b'{')?;
    let b = &mut *ctx.builder;
    b.begin_version(property);
    if !s.empty(b'}')? {
        loop {
            let field = match s.key()?.as_bytes() {
                b"value" => {
                    text_into(s.raw_scalar()?, b.str_column(StrField::Value)).ok()?;
                    None
                }
                b"timestamp" => {
                    b.set_timestamp(time(s)?);
                    None
                }
                b"updated-by-user-id" | b"updatedByUserId" => {
                    let user = if s.peek()? == b'n' {
                        s.literal(b"null")?;
                        None
                    } else {
                        Some(s.int()?)
                    };
                    b.set_updated_by(user);
                    None
                }
                b"source-type" | b"source" | b"sourceType" | b"changeSource" => {
                    Some(StrField::SourceType)
                }
                b"source-id" | b"sourceId" => Some(StrField::SourceId),
                b"source-label" | b"sourceLabel" => Some(StrField::SourceLabel),
                _ => {
                    s.skip(1)?;
                    None
                }
            };
            if let Some(field) = field {
                // As the visitors' `Text` without `exact`: a string as it is, or null.
                let col = b.str_column(field);
                if s.peek()? == b'n' {
                    s.literal(b"null")?;
                    col.push(None);
                } else {
                    let (text, escaped) = s.string()?;
                    if escaped || text.len() > MAX_VALUE_BYTES {
                        return None;
                    }
                    col.push(Some(text.as_bytes()));
                }
            }
            if s.next_or_close(b'}')? {
                break;
            }
        }
    }
    b.end_version();
    Some(())
}

/// A timestamp the visitors would take: whole epoch milliseconds in range, as a number or a
/// string of them (or an ISO-8601 time).
fn time(s: &mut Scanner<'_>) -> Fast<i64> {
    let ms = if s.peek()? == b'"' {
        let (text, escaped) = s.string()?;
        if escaped {
            return None;
        }
        timestamp::parse(text.as_bytes())?
    } else {
        s.int()?
    };
    timestamp::in_range(ms).ok()
}

#[cfg(test)]
mod tests {
    use super::super::{JsonContext, JsonScratch, explode_slice};
    use crate::explode::{CollectSink, LocalIds};

    /// Everything a text gives: rows, counts, rejects, names interned, the error.
    fn explode(text: &[u8], fast: bool, limit: Option<u64>) -> String {
        let mut scratch = JsonScratch::default();
        let mut ids = LocalIds::default();
        let mut sink = CollectSink::default();
        let mut ctx = JsonContext::new(&mut scratch, &mut ids, &mut sink);
        ctx.fast = fast;
        ctx.limit = limit;
        let error = explode_slice(text, &mut ctx).err().map(|e| e.to_string());
        let records = ctx.records;
        let rows: Vec<String> = (0..sink.rows.len())
            .map(|i| format!("{} {:?}", sink.rows.property[i], sink.rows.row(i)))
            .collect();
        format!(
            "records {records} {} rows {rows:?} rejects {:?} names {:?} \
             events {} {} {:?} error {error:?}",
            sink.records,
            sink.rejects,
            ids.names,
            sink.events_without_version,
            sink.records_without_history,
            sink.object_events,
        )
    }

    /// Whether the fast path takes `text` (reads it whole).
    fn taken(text: &[u8]) -> bool {
        let mut scratch = JsonScratch::default();
        let mut ids = LocalIds::default();
        let mut sink = CollectSink::default();
        let mut ctx = JsonContext::new(&mut scratch, &mut ids, &mut sink);
        super::explode_text(std::str::from_utf8(text).unwrap(), &mut ctx)
    }

    fn same(text: &[u8]) {
        for limit in [None, Some(1)] {
            assert_eq!(
                explode(text, true, limit),
                explode(text, false, limit),
                "text: {}",
                String::from_utf8_lossy(text)
            );
        }
    }

    const RECORD: &str = r#"{"vid":3000000001,"canonical-vid":3000000001,"portal-id":62515,"is-contact":true,
        "properties":{"email":{"value":"b@x.io","versions":[{"value":"b@x.io","source-type":"CRM_UI",
        "source-id":"userId:9","source-label":null,"updated-by-user-id":9,"timestamp":1700000000000,
        "selected":false},{"value":"a\"\\/\n@x.io","timestamp":"1690000000000","source-type":"FORM"},
        {"value":12.50,"timestamp":1690000000001},{"value":true,"timestamp":-5,"updated-by-user-id":null},
        {"value":null,"timestamp":"2024-01-02T03:04:05Z"}]},
        "hs_object_id":{"value":"3000000001","versions":[]},
        "untimed":{"value":"x","timestamp":77,"versions":[{"value":"y"}]},
        "current":{"value":"only"},"nothing":{"value":null,"versions":null},
        "deal":{"versions":[{"value":"1","timestamp":1,"source":"API","sourceId":"s","sourceVid":[1,{"a":[]}]}]}},
        "identity-profiles":[{"vid":1,"identities":[{"type":"EMAIL","value":"b@x.io"}]}],
        "merge-audits":[],"form-submissions":{},"list-memberships":[1e5,-0.5e-3,0,-0]}"#;

    #[test]
    fn the_common_record_is_taken_and_read_as_the_general_parser_reads_it() {
        assert!(taken(RECORD.as_bytes()));
        same(RECORD.as_bytes());
        let deal =
            br#"{"portalId":1,"dealId":42,"properties":{"amount":{"value":"100","timestamp":5,
            "versions":[{"value":"100","timestamp":5,"source":"API","sourceId":null}]}}}"#;
        assert!(taken(deal));
        same(deal);
        // Current values without histories: a record the sink is told has none.
        let current =
            br#"{"vid":7,"properties":{"a":{"value":"x"},"b":{"value":null,"versions":[]}}}"#;
        assert!(taken(current));
        same(current);
    }

    #[test]
    fn generated_v1_dumps_take_the_fast_path_and_read_the_same() {
        use crate::generate::{Dialect, GenConfig, generate};
        for dialect in [Dialect::V1, Dialect::V1Deals] {
            let dir = tempfile::tempdir().unwrap();
            let mut g = GenConfig::new(dir.path());
            g.objects = 30;
            g.properties = 40;
            g.dialect = dialect;
            g.threads = 1;
            generate(&g).unwrap();
            let mut lines = 0;
            for entry in std::fs::read_dir(dir.path()).unwrap() {
                let path = entry.unwrap().path();
                if path.file_name().unwrap().to_string_lossy().starts_with('_') {
                    continue;
                }
                let text = std::fs::read(&path).unwrap();
                for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                    assert!(
                        taken(line),
                        "{dialect:?}: {}",
                        String::from_utf8_lossy(line)
                    );
                    same(line);
                    lines += 1;
                }
            }
            assert_eq!(lines, 30, "{dialect:?}");
        }
    }

    #[test]
    fn what_it_does_not_take_goes_the_general_way_with_the_same_result() {
        let cases: &[&[u8]] = &[
            // Other dialects, pages, events, keyed records.
            br#"{"id":"5","propertiesWithHistory":{"a":[{"value":"1","timestamp":"2024-01-01T00:00:00Z"}]}}"#,
            br#"{"results":[{"vid":1,"properties":{}}]}"#,
            br#"{"objectId":1,"propertyName":"a","propertyValue":"b","occurredAt":5}"#,
            br#"{"17":{"vid":17,"properties":{}}}"#,
            br#"[{"vid":1,"properties":{}}]"#,
            // Two records on a line; a record then junk.
            br#"{"vid":1,"properties":{}} {"vid":2,"properties":{}}"#,
            br#"{"vid":1,"properties":{}} x"#,
            // Escapes the fast path leaves alone.
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"\u00e9","timestamp":1}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"\ud800","timestamp":1}]}}}"#,
            br#"{"vid":1,"properties":{"a\n":{"versions":[{"value":"x","timestamp":1}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"source-type":"A\tB","timestamp":1}]}}}"#,
            // Values the visitors reject or read their own way.
            br#"{"vid":"x1","properties":{}}"#,
            br#"{"vid":null,"properties":{}}"#,
            br#"{"vid":99999999999999999999,"properties":{}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":{"x":1},"timestamp":1}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"x","timestamp":1.5}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"x","timestamp":"soon"}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"x","timestamp":-0}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"x","timestamp":1,"updated-by-user-id":-0}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"x","timestamp":1,"updated-by-user-id":"7"}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"x","timestamp":1,"source-type":7}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"x"}]}}}"#,
            br#"{"vid":1,"properties":{"a":{"versions":{}}}}"#,
            br#"{"vid":1,"properties":{"a":"current"}}"#,
            br#"{"vid":1,"properties":null}"#,
            br#"{"properties":{"hs_object_id":{"value":"12"},"a":{"versions":[{"value":"x","timestamp":1}]}}}"#,
            br#"{"properties":{"hs_object_id":{"value":"twelve"}}}"#,
            br#"{}"#,
            br#"{"vid":1}"#,
            // Invalid JSON of every kind.
            br#"{"vid":01,"properties":{}}"#,
            br#"{"vid":1,"properties":{},}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"x","timestamp":1},]}}}"#,
            br#"{"vid":1,"x":[1 2]}"#,
            br#"{"vid":1,"x":nul}"#,
            br#"{"vid":1,"x":1.}"#,
            br#"{"vid":1,"x":"a
b"}"#,
            br#"{"vid":1,"x":"\q"}"#,
            br#"{"vid":1,"properties":{"a":{"versions":[{"value":"x","timestamp":1}"#,
            br#"   "#,
            br#""#,
        ];
        for text in cases {
            same(text);
        }
        let deep = format!(r#"{{"vid":1,"x":{}1{}}}"#, "[".repeat(200), "]".repeat(200));
        same(deep.as_bytes());
        let deep = format!(r#"{{"vid":1,"x":{}1{}}}"#, "[".repeat(99), "]".repeat(99));
        assert!(taken(deep.as_bytes()));
        same(deep.as_bytes());
    }

    #[test]
    fn a_plain_run_ends_at_the_first_quote_backslash_or_control_byte() {
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let bytes = [
            b'a', b'"', b'\\', 0x00, 0x1f, 0x20, 0x7f, 0x80, 0xff, b'!', b'#', b']',
        ];
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            // Mostly plain bytes, so that runs are long enough for the eight-byte steps.
            let text: Vec<u8> = (0..len)
                .map(|_| match next() % 8 {
                    0 => bytes[(next() as usize) % bytes.len()],
                    _ => b'a' + (next() % 26) as u8,
                })
                .collect();
            let from = (next() as usize) % (len + 1);
            let naive = (from..len)
                .find(|&i| matches!(text[i], b'"' | b'\\' | 0x00..=0x1f))
                .unwrap_or(len);
            assert_eq!(super::plain_run(&text, from), naive, "{text:?} from {from}");
        }
    }

    #[test]
    fn cut_and_mutated_records_read_as_the_general_parser_reads_them() {
        let base = RECORD.as_bytes();
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let alphabet = b"\"\\{}[],: 0123456789-+.eEtrufalsn\x01\xc3\xa9/u";
        for len in 0..base.len() {
            same(&base[..len]);
        }
        for _ in 0..3000 {
            let mut text = base.to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % text.len();
                let c = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => text[at] = c,
                    1 => text.insert(at, c),
                    _ => {
                        text.remove(at);
                    }
                }
            }
            same(&text);
        }
    }
}
