//! JSON for people and diffs: objects near the top and arrays of containers one item per
//! line, everything deeper on one line. Used for plans, manifests and history records, so that
//! a 1,280-property record is 1,280 short lines rather than one long one or 10,000 tiny ones.

use serde_json::Value;

/// `value` laid out as described above, newline-terminated.
pub fn to_lines(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value, 0);
    out.push('\n');
    out
}

/// Objects near the top and arrays of containers one item per line; everything else compact.
fn write_value(out: &mut String, v: &Value, depth: usize) {
    let pad = |n: usize| "  ".repeat(n);
    match v {
        Value::Object(map) if depth < 2 && !map.is_empty() => {
            out.push_str("{\n");
            for (i, (k, v)) in map.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_value(out, v, depth + 1);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push('}');
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                write_compact(out, item);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            out.push_str(&pad(depth));
            out.push(']');
        }
        _ => write_compact(out, v),
    }
}

/// One line, with a space after `:` and `,` so that it reads like the history files.
fn write_compact(out: &mut String, v: &Value) {
    match v {
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push_str(": ");
                write_compact(out, v);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_compact(out, item);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_layout() {
        let v =
            json!({"a": 1, "b": {"c": [1, 2], "d": [{"x": 1}, {"y": [2, {"z": null}]}]}, "e": []});
        let s = to_lines(&v);
        let want = r#"{
  "a": 1,
  "b": {
    "c": [1, 2],
    "d": [
      {"x": 1},
      {"y": [2, {"z": null}]}
    ]
  },
  "e": []
}
"#;
        assert_eq!(s, want);
        assert_eq!(serde_json::from_str::<Value>(&s).unwrap(), v);
    }
}
