//! JSON text byte-for-byte like Python's `json.dumps` with its defaults, which is what Plane
//! both sends and signs: `", "` and `": "` separators, `ensure_ascii` escapes, and objects in
//! the order they were built (serde_json's map is sorted, so ordered objects are [`Py`]).

use serde_json::Value;

/// A JSON value whose objects keep the order they were built in, as a Python dict does.
#[derive(Clone, Debug, PartialEq)]
pub enum Py {
    /// A plain JSON value; its own objects come out with sorted keys.
    Value(Value),
    /// An object whose keys come out in this order.
    Object(Vec<(String, Py)>),
    /// An array of ordered values.
    List(Vec<Py>),
}

impl From<Value> for Py {
    fn from(value: Value) -> Self {
        Py::Value(value)
    }
}

impl Py {
    /// An ordered object from `(key, value)` pairs.
    pub fn object<K: Into<String>, V: Into<Py>>(pairs: impl IntoIterator<Item = (K, V)>) -> Py {
        Py::Object(
            pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }

    /// The same value as a serde_json [`Value`] (the order is lost).
    pub fn to_value(&self) -> Value {
        match self {
            Py::Value(value) => value.clone(),
            Py::Object(pairs) => Value::Object(
                pairs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
            Py::List(items) => Value::Array(items.iter().map(Py::to_value).collect()),
        }
    }
}

/// `json.dumps(value)` for a plain JSON value (objects come out with sorted keys).
pub fn python_json(value: &Value) -> String {
    let mut out = String::new();
    write_value(&mut out, value);
    out
}

/// `json.dumps(value)` for an ordered value.
pub fn python_json_ordered(value: &Py) -> String {
    let mut out = String::new();
    write_py(&mut out, value);
    out
}

fn write_py(out: &mut String, value: &Py) {
    match value {
        Py::Value(value) => write_value(out, value),
        Py::Object(pairs) => {
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, key);
                out.push_str(": ");
                write_py(out, value);
            }
            out.push('}');
        }
        Py::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_py(out, item);
            }
            out.push(']');
        }
    }
}

fn write_value(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => out.push_str(&i.to_string()),
            (_, Some(u), _) => out.push_str(&u.to_string()),
            (_, _, Some(f)) => out.push_str(&python_float(f)),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, value)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, key);
                out.push_str(": ");
                write_value(out, value);
            }
            out.push('}');
        }
    }
}

/// Python's `repr(float)`: always a `.0` on whole numbers, exponent form (`1e+16`, `1e-05`)
/// outside `1e-4 <= |x| < 1e16`.
fn python_float(f: f64) -> String {
    let abs = f.abs();
    if f == 0.0 || (1e-4..1e16).contains(&abs) {
        let s = format!("{f}");
        return if s.contains('.') { s } else { format!("{s}.0") };
    }
    let s = format!("{f:e}");
    let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
    let (sign, digits) = match exponent.strip_prefix('-') {
        Some(digits) => ('-', digits),
        None => ('+', exponent),
    };
    format!("{mantissa}e{sign}{digits:0>2}")
}

/// A string literal with `ensure_ascii`: printable ASCII as is, the usual short escapes,
/// everything else `\uXXXX` in lowercase hex (astral characters as a surrogate pair).
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    // Every expected string below is what CPython 3 prints for `json.dumps(...)` of the same
    // value.

    #[test]
    fn matches_python_separators_and_escapes() {
        assert_eq!(
            python_json(&json!({"a": 1, "b": [1, 2], "c": "\u{e9}"})),
            r#"{"a": 1, "b": [1, 2], "c": "\u00e9"}"#
        );
        assert_eq!(python_json(&json!({})), "{}");
        assert_eq!(python_json(&json!([])), "[]");
        assert_eq!(
            python_json(&json!([null, true, false, -3])),
            "[null, true, false, -3]"
        );
    }

    #[test]
    fn escapes_like_ensure_ascii() {
        // json.dumps("q\"b\\s/\n\r\t\b\f\x01\x7f€😀")
        let s = "q\"b\\s/\n\r\t\u{8}\u{c}\u{1}\u{7f}€😀";
        assert_eq!(
            python_json(&json!(s)),
            r#""q\"b\\s/\n\r\t\b\f\u0001\u007f\u20ac\ud83d\ude00""#
        );
    }

    #[test]
    fn floats_look_like_python_repr() {
        // json.dumps([65535.0, 0.5, 1e16, 1e-05, 0.0001, -2.5, 0.0])
        let value = json!([65535.0, 0.5, 1e16, 1e-5, 0.0001, -2.5, 0.0]);
        assert_eq!(
            python_json(&value),
            "[65535.0, 0.5, 1e+16, 1e-05, 0.0001, -2.5, 0.0]"
        );
    }

    #[test]
    fn ordered_objects_keep_insertion_order() {
        let value = Py::object([
            ("zeta", Py::from(json!(1))),
            ("alpha", Py::object([("y", json!(null)), ("x", json!("é"))])),
        ]);
        assert_eq!(
            python_json_ordered(&value),
            r#"{"zeta": 1, "alpha": {"y": null, "x": "\u00e9"}}"#
        );
        assert_eq!(
            value.to_value(),
            json!({"zeta": 1, "alpha": {"x": "é", "y": null}})
        );
    }
}
