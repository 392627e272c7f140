//! OpenAPI description of a backend's paths, in the shape Vault's
//! `sys/internal/specs/openapi` merges from plugins (`framework.OASDocument`).

use serde_json::{json, Map, Value};

use super::field::FieldSchema;
use super::path::Path;
use super::request::Operation;

/// `roles/(?P<name>\w+)` -> `/roles/{name}`; `roles/?` -> `/roles/`.
pub(crate) fn template(pattern: &str) -> String {
    let mut out = String::from("/");
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '(' if chars.peek() == Some(&'?') => {
                // Named group: take its name, skip to the matching ')'.
                let group: String = chars.by_ref().take_while(|c| *c != '>').collect();
                let name = group.trim_start_matches("?P<").trim_start_matches("?<");
                let mut depth = 1;
                for c in chars.by_ref() {
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                out.push_str(&format!("{{{name}}}"));
            }
            '?' | '$' | '^' => {}
            c => out.push(c),
        }
    }
    out
}

fn schema(f: &FieldSchema) -> Value {
    let (ty, format) = f.ty.openapi();
    let mut s = json!({"type": ty, "description": f.description});
    if ty == "array" {
        s["items"] = json!({"type": "string"});
    }
    if let Some(format) = format {
        s["format"] = Value::String(format.into());
    }
    s
}

fn operation_id(path: &str, verb: &str) -> String {
    let slug: String = path
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    format!("{verb}{}", slug.trim_end_matches('-'))
}

/// The OpenAPI path item for one path; captures become path parameters.
pub(crate) fn path_item(path: &Path, tag: &str) -> (String, Value) {
    let tpl = template(path.pattern);
    let params: Vec<&FieldSchema> = path
        .fields
        .iter()
        .filter(|f| tpl.contains(&format!("{{{}}}", f.name)))
        .collect();
    let body: Vec<&FieldSchema> = path
        .fields
        .iter()
        .filter(|f| !tpl.contains(&format!("{{{}}}", f.name)))
        .collect();
    let mut item = Map::new();
    item.insert("description".into(), Value::String(path.synopsis.into()));
    if !params.is_empty() {
        let p: Vec<Value> = params
            .iter()
            .map(|f| json!({"name": f.name, "description": f.description, "in": "path", "schema": schema(f), "required": true}))
            .collect();
        item.insert("parameters".into(), Value::from(p));
    }
    if path.existence.is_some() {
        item.insert("x-vault-createSupported".into(), Value::Bool(true));
    }
    let ok = json!({"200": {"description": "OK"}});
    let has = |op| path.handler(op).is_some();
    if has(Operation::Read) || has(Operation::List) {
        let mut get = json!({"summary": path.synopsis, "operationId": operation_id(&tpl, "read"), "tags": [tag], "responses": ok});
        if has(Operation::List) && !has(Operation::Read) {
            get["parameters"] = json!([{"name": "list", "description": "Must be set to `true`", "in": "query", "schema": {"type": "string", "enum": ["true"]}, "required": true}]);
            get["operationId"] = Value::String(operation_id(&tpl, "list"));
        }
        item.insert("get".into(), get);
    }
    if has(Operation::Update) || has(Operation::Create) {
        let props: Map<String, Value> = body
            .iter()
            .map(|f| (f.name.to_string(), schema(f)))
            .collect();
        let required: Vec<&str> = body.iter().filter(|f| f.required).map(|f| f.name).collect();
        let mut s = json!({"type": "object", "properties": props});
        if !required.is_empty() {
            s["required"] = Value::from(required);
        }
        let mut post = json!({"summary": path.synopsis, "operationId": operation_id(&tpl, "write"), "tags": [tag], "responses": ok});
        if !body.is_empty() {
            post["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": s}}});
        }
        item.insert("post".into(), post);
    }
    if has(Operation::Delete) {
        item.insert(
            "delete".into(),
            json!({"summary": path.synopsis, "operationId": operation_id(&tpl, "delete"), "tags": [tag], "responses": {"204": {"description": "empty body"}}}),
        );
    }
    (tpl, Value::Object(item))
}

pub(crate) fn document<'a>(paths: impl Iterator<Item = &'a Path>, description: &str) -> Value {
    let items: Map<String, Value> = paths.map(|p| path_item(p, "secrets")).collect();
    json!({
        "openapi": "3.0.2",
        "info": {
            "title": "HashiCorp Vault API",
            "description": description,
            "version": env!("CARGO_PKG_VERSION"),
            "license": {"name": "Mozilla Public License 2.0", "url": "https://www.mozilla.org/en-US/MPL/2.0"}
        },
        "paths": items,
        "components": {"schemas": {}}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_from_patterns() {
        assert_eq!(
            template(r"roles/(?P<name>\w(([\w.-]+)?\w)?)"),
            "/roles/{name}"
        );
        assert_eq!(template("roles/?"), "/roles/");
        assert_eq!(template("config"), "/config");
    }
}
