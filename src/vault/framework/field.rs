//! Typed request fields with the input forms Vault's Go framework accepts.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::duration::parse_duration;
use super::error::BackendError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    String,
    /// A string, lower-cased (role names).
    LowerCaseString,
    Int,
    Bool,
    /// A JSON array of strings or a comma-separated string `"a,b"`.
    CommaStringSlice,
    /// Integer seconds, a Go duration string (`1h30m`) or days (`7d`).
    DurationSecond,
}

impl FieldType {
    /// The type name Vault's OpenAPI generator uses.
    pub(crate) fn openapi(self) -> (&'static str, Option<&'static str>) {
        match self {
            FieldType::String | FieldType::LowerCaseString => ("string", None),
            FieldType::Int => ("integer", None),
            FieldType::Bool => ("boolean", None),
            FieldType::CommaStringSlice => ("array", None),
            FieldType::DurationSecond => ("string", Some("duration")),
        }
    }
}

#[derive(Debug, Clone)]
pub struct FieldSchema {
    pub name: &'static str,
    pub ty: FieldType,
    pub description: &'static str,
    pub required: bool,
}

impl FieldSchema {
    pub fn new(name: &'static str, ty: FieldType, description: &'static str) -> Self {
        Self {
            name,
            ty,
            description,
            required: false,
        }
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }
}

/// A parsed field value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    String(String),
    Int(i64),
    Bool(bool),
    Strings(Vec<String>),
    Duration(Duration),
}

impl FieldValue {
    pub fn to_json(&self) -> Value {
        match self {
            FieldValue::String(s) => Value::String(s.clone()),
            FieldValue::Int(i) => Value::from(*i),
            FieldValue::Bool(b) => Value::Bool(*b),
            FieldValue::Strings(v) => Value::from(v.clone()),
            FieldValue::Duration(d) => Value::from(d.as_secs()),
        }
    }
}

/// Raw request data (path captures win over body fields) plus the path's schema.
#[derive(Debug, Clone, Default)]
pub struct FieldData {
    raw: Map<String, Value>,
    schema: HashMap<&'static str, FieldSchema>,
}

impl FieldData {
    pub fn new(raw: Map<String, Value>, schema: &[FieldSchema]) -> Self {
        Self {
            raw,
            schema: schema.iter().map(|f| (f.name, f.clone())).collect(),
        }
    }

    /// Parses every supplied field once, so bad input fails before any handler runs.
    pub fn validate(&self) -> Result<(), BackendError> {
        for name in self.schema.keys() {
            self.get(name)?;
        }
        Ok(())
    }

    /// Whether the caller supplied the field at all (merging writes depend on it).
    pub fn is_set(&self, name: &str) -> bool {
        self.raw.get(name).is_some_and(|v| !v.is_null())
    }

    /// The parsed value, `None` when not supplied.
    pub fn get(&self, name: &str) -> Result<Option<FieldValue>, BackendError> {
        let schema = self.schema.get(name).ok_or_else(|| {
            BackendError::internal(format!("field {name:?} is not in the path's schema"))
        })?;
        let Some(raw) = self.raw.get(name).filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        parse(schema.ty, raw).map(Some).map_err(|why| {
            BackendError::user(format!(
                "Field validation failed: error converting input for field {name:?}: {why}"
            ))
        })
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, BackendError> {
        Ok(match self.get(name)? {
            Some(FieldValue::String(s)) => Some(s),
            _ => None,
        })
    }

    /// A string that must be present and non-empty.
    pub fn required_string(&self, name: &str) -> Result<String, BackendError> {
        match self.string(name)? {
            Some(s) if !s.is_empty() => Ok(s),
            _ => Err(BackendError::user(format!(
                "missing required field {name:?}"
            ))),
        }
    }

    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, BackendError> {
        Ok(match self.get(name)? {
            Some(FieldValue::Strings(v)) => Some(v),
            _ => None,
        })
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, BackendError> {
        Ok(match self.get(name)? {
            Some(FieldValue::Int(i)) => Some(i),
            _ => None,
        })
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, BackendError> {
        Ok(match self.get(name)? {
            Some(FieldValue::Bool(b)) => Some(b),
            _ => None,
        })
    }

    pub fn duration(&self, name: &str) -> Result<Option<Duration>, BackendError> {
        Ok(match self.get(name)? {
            Some(FieldValue::Duration(d)) => Some(d),
            _ => None,
        })
    }
}

fn parse(ty: FieldType, raw: &Value) -> Result<FieldValue, String> {
    match ty {
        FieldType::String => scalar_string(raw).map(FieldValue::String),
        FieldType::LowerCaseString => {
            scalar_string(raw).map(|s| FieldValue::String(s.to_lowercase()))
        }
        FieldType::Int => match raw {
            Value::Number(n) => n.as_i64().ok_or_else(|| format!("{n} is not an integer")),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("{s:?} is not an integer")),
            other => Err(format!("{other} is not an integer")),
        }
        .map(FieldValue::Int),
        FieldType::Bool => match raw {
            Value::Bool(b) => Ok(*b),
            Value::String(s) => match s.trim() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
                _ => Err(format!("{s:?} is not a boolean")),
            },
            other => Err(format!("{other} is not a boolean")),
        }
        .map(FieldValue::Bool),
        FieldType::CommaStringSlice => comma_strings(raw).map(FieldValue::Strings),
        FieldType::DurationSecond => parse_duration(raw).map(FieldValue::Duration),
    }
}

fn scalar_string(raw: &Value) -> Result<String, String> {
    match raw {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(format!("{other} is not a string")),
    }
}

/// `"a, b"` or `["a","b"]` -> `["a","b"]`; whitespace trimmed, empty items dropped.
fn comma_strings(raw: &Value) -> Result<Vec<String>, String> {
    let items: Vec<String> = match raw {
        Value::String(s) => s.split(',').map(str::to_string).collect(),
        Value::Array(a) => a.iter().map(scalar_string).collect::<Result<_, _>>()?,
        other => scalar_string(other).map(|s| vec![s])?,
    };
    Ok(items
        .into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(raw: Value) -> FieldData {
        let schema = [
            FieldSchema::new("name", FieldType::LowerCaseString, ""),
            FieldSchema::new("roles", FieldType::CommaStringSlice, ""),
            FieldSchema::new("ttl", FieldType::DurationSecond, ""),
            FieldSchema::new("count", FieldType::Int, ""),
            FieldSchema::new("flag", FieldType::Bool, ""),
        ];
        FieldData::new(raw.as_object().cloned().unwrap_or_default(), &schema)
    }

    #[test]
    fn parses_vault_input_forms() {
        let d = data(
            json!({"name": "MyRole", "roles": "A, B,,", "ttl": "1h", "count": "3", "flag": "true"}),
        );
        d.validate().expect("valid");
        assert_eq!(d.string("name").expect("ok"), Some("myrole".into()));
        assert_eq!(
            d.strings("roles").expect("ok"),
            Some(vec!["A".into(), "B".into()])
        );
        assert_eq!(
            d.duration("ttl").expect("ok"),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(d.int("count").expect("ok"), Some(3));
        assert_eq!(d.bool("flag").expect("ok"), Some(true));
        let arr = data(json!({"roles": ["X", " Y "]}));
        assert_eq!(
            arr.strings("roles").expect("ok"),
            Some(vec!["X".into(), "Y".into()])
        );
    }

    #[test]
    fn bad_input_is_a_user_error_naming_the_field() {
        let d = data(json!({"count": "many"}));
        match d.validate() {
            Err(BackendError::User(msg)) => assert!(msg.contains("\"count\""), "{msg}"),
            other => panic!("expected user error, got {other:?}"),
        }
        assert!(matches!(
            data(json!({})).required_string("name"),
            Err(BackendError::User(_))
        ));
    }

    #[test]
    fn a_duration_beyond_go_time_is_a_user_error_naming_the_field() {
        match data(json!({"ttl": 9_999_999_999_999u64})).duration("ttl") {
            Err(BackendError::User(msg)) => {
                assert!(msg.contains("\"ttl\""), "{msg}");
                assert!(msg.contains("longer than Vault can represent"), "{msg}");
            }
            other => panic!("expected user error, got {other:?}"),
        }
    }

    #[test]
    fn absent_and_null_are_unset() {
        let d = data(json!({"ttl": null}));
        assert!(!d.is_set("ttl"));
        assert_eq!(d.duration("ttl").expect("ok"), None);
    }

    /// Any JSON value, nested a few levels, with strings that look like
    /// numbers, booleans, lists and durations as often as random text.
    fn arb_json() -> impl proptest::strategy::Strategy<Value = Value> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".*".prop_map(Value::String),
            "[ 0-9a-zA-Z,.+-]{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                proptest::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    const TYPES: [FieldType; 6] = [
        FieldType::String,
        FieldType::LowerCaseString,
        FieldType::Int,
        FieldType::Bool,
        FieldType::CommaStringSlice,
        FieldType::DurationSecond,
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]

        /// Any value for any field type parses or is a user error naming the
        /// field; never a panic, never an internal error.
        #[test]
        fn any_value_parses_or_names_the_field(ty in 0..TYPES.len(), raw in arb_json()) {
            let schema = [FieldSchema::new("the_field", TYPES[ty], "")];
            let mut map = Map::new();
            map.insert("the_field".into(), raw.clone());
            let data = FieldData::new(map, &schema);
            match data.validate() {
                Ok(()) => {
                    let parsed = data.get("the_field");
                    proptest::prop_assert!(matches!(parsed, Ok(Some(_)) | Ok(None)), "{parsed:?}");
                }
                Err(BackendError::User(msg)) => {
                    proptest::prop_assert!(msg.contains("\"the_field\""), "{msg}");
                }
                Err(other) => proptest::prop_assert!(false, "{raw} as {:?}: {other:?}", TYPES[ty]),
            }
        }

        #[test]
        fn ints_in_every_form(n in any_i64()) {
            for raw in [Value::from(n), Value::String(n.to_string()), Value::String(format!(" {n} "))] {
                proptest::prop_assert_eq!(parse(FieldType::Int, &raw), Ok(FieldValue::Int(n)));
            }
        }

        #[test]
        fn ints_beyond_i64_are_rejected(n in (i64::MAX as u64 + 1)..=u64::MAX) {
            proptest::prop_assert!(parse(FieldType::Int, &Value::from(n)).is_err());
            proptest::prop_assert!(parse(FieldType::Int, &Value::String(n.to_string())).is_err());
        }

        #[test]
        fn comma_lists_and_arrays_agree(items in proptest::collection::vec("[^,]{0,10}", 0..6)) {
            let expected: Vec<String> = items.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
            let joined = Value::String(items.join(","));
            let array = Value::from(items.clone());
            proptest::prop_assert_eq!(parse(FieldType::CommaStringSlice, &joined), Ok(FieldValue::Strings(expected.clone())));
            proptest::prop_assert_eq!(parse(FieldType::CommaStringSlice, &array), Ok(FieldValue::Strings(expected)));
        }

        #[test]
        fn strings_are_kept_and_lower_cased(s in ".*") {
            let raw = Value::String(s.clone());
            proptest::prop_assert_eq!(parse(FieldType::String, &raw), Ok(FieldValue::String(s.clone())));
            proptest::prop_assert_eq!(parse(FieldType::LowerCaseString, &raw), Ok(FieldValue::String(s.to_lowercase())));
        }

        #[test]
        fn bools_only_from_their_spellings(s in ".{0,6}") {
            let got = parse(FieldType::Bool, &Value::String(s.clone()));
            let expected = match s.trim() {
                "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(FieldValue::Bool(true)),
                "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(FieldValue::Bool(false)),
                _ => Err(()),
            };
            proptest::prop_assert_eq!(got.map_err(|_| ()), expected);
        }
    }

    fn any_i64() -> impl proptest::strategy::Strategy<Value = i64> {
        proptest::prelude::any::<i64>()
    }
}
