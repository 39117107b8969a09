//! Docker's `filters` query parameter. Clients send it in two wire forms,
//! and Docker reads both: the docker CLI's `{"name": {"web": true}}` and the
//! SDKs' `{"name": ["web"]}` (moby's filters.FromJSON). Both become the map
//! form the list endpoints read; anything else is the client's mistake, a
//! 400 (before, a list form was ignored and the whole list came back).

use std::collections::HashMap;

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// The request's filters in the map form (`Null` when there are none).
pub fn from_query(q: &HashMap<String, String>) -> ApiResult<Value> {
    match q.get("filters").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        Some(text) => normalize(text),
        None => Ok(Value::Null),
    }
}

/// `{"key": ["a", "b"]}` or `{"key": {"a": true, "b": true}}` → the map form.
pub fn normalize(text: &str) -> ApiResult<Value> {
    let v: Value = serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let Value::Object(fields) = v else {
        return Err(ApiError::bad_request("invalid filter: filters are a JSON object of field → values"));
    };
    let mut out = Map::new();
    for (key, values) in fields {
        let set: Map<String, Value> = match values {
            Value::Array(list) => list
                .into_iter()
                .map(|x| match x {
                    Value::String(s) => Ok((s, Value::Bool(true))),
                    other => Err(ApiError::bad_request(format!("invalid filter '{key}': {other} is not a string"))),
                })
                .collect::<ApiResult<_>>()?,
            Value::Object(map) => map.into_iter().map(|(k, _)| (k, Value::Bool(true))).collect(),
            other => return Err(ApiError::bad_request(format!("invalid filter '{key}': {other} is neither a list nor a map of values"))),
        };
        out.insert(key, Value::Object(set));
    }
    Ok(Value::Object(out))
}

/// Refuses a filter field the endpoint does not know (as Docker does:
/// `invalid filter 'foo'`) — above all before a prune, where a field
/// ignored would remove what the client meant to keep.
pub fn check_keys(filters: &Value, known: &[&str]) -> ApiResult<()> {
    match filters.as_object().and_then(|f| f.keys().find(|k| !known.contains(&k.as_str()))) {
        Some(k) => Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_wire_forms_become_the_map_form_and_anything_else_is_refused() {
        let map = normalize(r#"{"name":{"web":true},"status":{"exited":true,"created":true}}"#).unwrap();
        let list = normalize(r#"{"name":["web"],"status":["exited","created"]}"#).unwrap();
        assert_eq!(map, list);
        assert_eq!(list, json!({ "name": { "web": true }, "status": { "exited": true, "created": true } }));
        assert_eq!(normalize("{}").unwrap(), json!({}));
        for bad in ["nope", "[\"name\"]", r#"{"name":"web"}"#, r#"{"name":[1]}"#, r#"{"name":"#] {
            assert_eq!(normalize(bad).unwrap_err().kind, crate::error::ErrorKind::BadRequest, "{bad}");
        }
        let q = HashMap::from([("filters".to_string(), String::new())]);
        assert_eq!(from_query(&q).unwrap(), Value::Null);
        assert_eq!(from_query(&HashMap::new()).unwrap(), Value::Null);
        assert!(check_keys(&list, &["name", "status"]).is_ok());
        assert_eq!(check_keys(&list, &["name"]).unwrap_err().message, "invalid filter 'status'");
        assert!(check_keys(&Value::Null, &[]).is_ok());
    }
}
