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
    fn absent_and_null_are_unset() {
        let d = data(json!({"ttl": null}));
        assert!(!d.is_set("ttl"));
        assert_eq!(d.duration("ttl").expect("ok"), None);
    }
}
