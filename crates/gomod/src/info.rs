//! `.info` / `@latest` JSON: `{"Version": ..., "Time": ..., "Origin": {...}}`.

use serde_json::{Map, Value};

use crate::error::{clip, Error, Result};
use crate::semver::is_valid_semver;

/// The fields of an `.info` response Flotilla keeps.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Info {
    #[serde(rename = "Version")]
    pub version: String,
    #[serde(rename = "Time", default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// `Origin` fields Go decodes as strings; another JSON type fails the client.
const ORIGIN_STRING_FIELDS: [&str; 8] = ["VCS", "URL", "Subdir", "Hash", "TagPrefix", "TagSum", "Ref", "RepoSum"];

/// Validates an `.info` body the way the go command would decode it: a JSON
/// object, `Version` a valid semver string, `Time` (if present, non-null) an
/// RFC 3339 string, `Origin` (if present, non-null) an object, and `Name`,
/// `Short`, `Tags` of the types Go expects. Other fields are ignored. Field
/// names are matched exactly (Go would also accept other letter cases).
pub fn parse_info(bytes: &[u8]) -> Result<Info> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let Value::Object(obj) = value else {
        return Err(bad("not a JSON object".into()));
    };
    let version = version_field(&obj)?;
    let time = optional_string(&obj, "Time")?;
    if let Some(t) = &time {
        check_rfc3339(t).map_err(|why| bad(format!("\"Time\" {:?} is not RFC 3339: {why}", clip(t))))?;
    }
    optional_string(&obj, "Name")?;
    optional_string(&obj, "Short")?;
    check_tags(&obj)?;
    check_origin(&obj)?;
    Ok(Info { version, time })
}

fn bad(msg: String) -> Error {
    Error::InvalidInfo(msg)
}

fn version_field(obj: &Map<String, Value>) -> Result<String> {
    let version = match obj.get("Version") {
        Some(Value::String(v)) => v.clone(),
        Some(_) => return Err(bad("\"Version\" is not a string".into())),
        None => return Err(bad("missing \"Version\"".into())),
    };
    if !is_valid_semver(&version) {
        return Err(bad(format!("\"Version\" {:?} is not a valid semantic version", clip(&version))));
    }
    Ok(version)
}

/// A field that is absent, `null`, or a string.
fn optional_string(obj: &Map<String, Value>, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(bad(format!("{key:?} is not a string"))),
    }
}

fn check_tags(obj: &Map<String, Value>) -> Result<()> {
    match obj.get("Tags") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::Array(tags)) if tags.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(bad("\"Tags\" is not an array of strings".into())),
    }
}

fn check_origin(obj: &Map<String, Value>) -> Result<()> {
    let origin = match obj.get("Origin") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Object(origin)) => origin,
        Some(_) => return Err(bad("\"Origin\" is not an object".into())),
    };
    for key in ORIGIN_STRING_FIELDS {
        optional_string(origin, key).map_err(|_| bad(format!("\"Origin\".{key:?} is not a string")))?;
    }
    Ok(())
}

/// `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` with real calendar ranges.
fn check_rfc3339(t: &str) -> std::result::Result<(), &'static str> {
    let b = t.as_bytes();
    if b.len() < 20 {
        return Err("too short");
    }
    let num = |from: usize, to: usize| -> std::result::Result<u32, &'static str> {
        let part = &b[from..to];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err("expected digits");
        }
        Ok(part.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    };
    for (at, sep) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')] {
        if b[at] != sep {
            return Err("wrong separator");
        }
    }
    let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("date out of range");
    }
    if num(11, 13)? > 23 || num(14, 16)? > 59 || num(17, 19)? > 59 {
        return Err("time out of range");
    }
    check_zone(&b[skip_fraction(b, 19)?..])
}

/// Index after an optional `.digits` fraction starting at `at`.
fn skip_fraction(b: &[u8], at: usize) -> std::result::Result<usize, &'static str> {
    if b.get(at) != Some(&b'.') {
        return Ok(at);
    }
    let digits = b[at + 1..].iter().take_while(|d| d.is_ascii_digit()).count();
    if digits == 0 {
        return Err("empty fraction");
    }
    Ok(at + 1 + digits)
}

fn check_zone(z: &[u8]) -> std::result::Result<(), &'static str> {
    if z == b"Z" {
        return Ok(());
    }
    let [sign, h1, h2, b':', m1, m2] = z else {
        return Err("bad time zone (want Z or ±HH:MM)");
    };
    let digits = [h1, h2, m1, m2];
    if !matches!(sign, b'+' | b'-') || !digits.iter().all(|d| d.is_ascii_digit()) {
        return Err("bad time zone (want Z or ±HH:MM)");
    }
    let (hours, minutes) = ((h1 - b'0') * 10 + (h2 - b'0'), (m1 - b'0') * 10 + (m2 - b'0'));
    if hours > 23 || minutes > 59 {
        return Err("time zone offset out of range");
    }
    Ok(())
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_infos() {
        let i = parse_info(br#"{"Version":"v1.0.0","Time":"2019-11-09T02:19:31Z"}"#).unwrap();
        assert_eq!(i, Info { version: "v1.0.0".into(), time: Some("2019-11-09T02:19:31Z".into()) });
        let i = parse_info(br#"{"Version":"v1.2"}"#).unwrap();
        assert_eq!(i.time, None);
        for ok in [
            r#"{"Version":"v1.0.0","Time":"2024-02-29T23:59:59.123456789+05:30"}"#,
            r#"{"Version":"v1.0.0","Time":"2000-02-29T00:00:00-00:00"}"#,
            r#"{"Version":"v1.0.0","Time":null,"Origin":null}"#,
            r#" {"Version":"v1.0.0","Origin":{"VCS":"git","URL":"https://x","Hash":"abc","Extra":1},"Foo":[1]} "#,
            r#"{"Version":"v1.0.0","Name":"abc","Short":"abc","Tags":["v1.0.0"]}"#,
        ] {
            assert!(parse_info(ok.as_bytes()).is_ok(), "{ok}: {:?}", parse_info(ok.as_bytes()));
        }
    }

    #[test]
    fn invalid_infos() {
        for (bad, why) in [
            ("", "not valid JSON"),
            ("[]", "not a JSON object"),
            ("\"v1.0.0\"", "not a JSON object"),
            ("{}", "missing \"Version\""),
            (r#"{"Version":1}"#, "not a string"),
            (r#"{"Version":"1.0.0"}"#, "not a valid semantic version"),
            (r#"{"Version":"v1.0.0"} x"#, "not valid JSON"),
            (r#"{"Version":"v1.0.0","Time":5}"#, "\"Time\" is not a string"),
            (r#"{"Version":"v1.0.0","Time":"2019-11-09 02:19:31Z"}"#, "RFC 3339"),
            (r#"{"Version":"v1.0.0","Time":"2019-11-09T02:19:31"}"#, "RFC 3339"),
            (r#"{"Version":"v1.0.0","Time":"2019-02-29T02:19:31Z"}"#, "date out of range"),
            (r#"{"Version":"v1.0.0","Time":"2019-13-01T02:19:31Z"}"#, "date out of range"),
            (r#"{"Version":"v1.0.0","Time":"2019-11-09T24:00:00Z"}"#, "time out of range"),
            (r#"{"Version":"v1.0.0","Time":"2019-11-09T02:19:31.Z"}"#, "empty fraction"),
            (r#"{"Version":"v1.0.0","Time":"2019-11-09T02:19:31+24:00"}"#, "offset out of range"),
            (r#"{"Version":"v1.0.0","Time":"2019-11-09T02:19:31z"}"#, "time zone"),
            (r#"{"Version":"v1.0.0","Time":"２019-11-09T02:19:31Z"}"#, "RFC 3339"),
            (r#"{"Version":"v1.0.0","Origin":"git"}"#, "\"Origin\" is not an object"),
            (r#"{"Version":"v1.0.0","Origin":{"URL":1}}"#, "\"Origin\".\"URL\" is not a string"),
            (r#"{"Version":"v1.0.0","Tags":"v1"}"#, "\"Tags\""),
        ] {
            let err = parse_info(bad.as_bytes()).expect_err(bad).to_string();
            assert!(err.contains(why), "{bad}: want {why:?} in {err:?}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn serializes_like_go() {
        let i = Info { version: "v1.0.0".into(), time: None };
        assert_eq!(serde_json::to_string(&i).unwrap(), r#"{"Version":"v1.0.0"}"#);
        let i = Info { version: "v1.0.0".into(), time: Some("2019-11-09T02:19:31Z".into()) };
        assert_eq!(serde_json::to_string(&i).unwrap(), r#"{"Version":"v1.0.0","Time":"2019-11-09T02:19:31Z"}"#);
    }
}
