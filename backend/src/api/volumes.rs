//! `docker volume create|ls|inspect|rm|prune`.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use berth_shared::container::refusal;
use serde_json::{json, Value};

use super::model::VolumeCreate;
use super::validate::{self, Checked};
use super::AppState;
use crate::engine::volumes::VolumeRecord;
use crate::error::{ApiError, ApiResult};

type Q = Query<std::collections::HashMap<String, String>>;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect))
        .route("/volumes/{name}", delete(remove))
}

/// Does a volume pass `filters` (name, label, label!, dangling, driver)?
fn matches_filters(v: &VolumeRecord, in_use: bool, filters: &Value) -> bool {
    let Some(f) = filters.as_object() else { return true };
    f.iter().all(|(key, wanted)| {
        let wanted: Vec<&String> = wanted.as_object().map(|o| o.keys().collect()).unwrap_or_default();
        key == "label!"
            || wanted.iter().any(|w| match key.as_str() {
                "name" => v.name.contains(w.as_str()),
                "driver" => *w == "local",
                "dangling" => (*w == "true" || *w == "1") != in_use,
                "label" => has_label(v, w),
                _ => true,
            })
    }) && f.get("label!").and_then(Value::as_object).is_none_or(|not| not.keys().all(|w| !has_label(v, w)))
}

/// `key` or `key=value` is among the volume's labels.
fn has_label(v: &VolumeRecord, w: &str) -> bool {
    match w.split_once('=') {
        Some((k, val)) => v.labels.get(k).is_some_and(|x| x == val),
        None => v.labels.contains_key(w),
    }
}

async fn list(State(st): State<AppState>, Query(q): Q) -> ApiResult<Json<Value>> {
    let f = super::filters::from_query(&q)?;
    super::filters::check_keys(&f, &["dangling", "driver", "label", "name"])?;
    let vols = &st.containers.volumes;
    let list: Vec<Value> = vols
        .list()
        .iter()
        .filter(|v| matches_filters(v, !st.containers.using_volume(&v.name).is_empty(), &f))
        .map(|v| vols.describe(v))
        .collect();
    Ok(Json(json!({"Volumes": list, "Warnings": null})))
}

async fn create(State(st): State<AppState>, Checked(body, typed): Checked<VolumeCreate>) -> ApiResult<(StatusCode, Json<Value>)> {
    // The driver is looked up before the local driver checks the name, as Docker does.
    match body["Driver"].as_str().unwrap_or("") {
        "" | "local" => {}
        other => {
            let named = typed.name.as_deref().filter(|n| !n.is_empty()).map(|n| format!("create {n}: ")).unwrap_or_default();
            return Err(ApiError::not_found(format!("{named}error looking up volume plugin {other}: plugin \"{other}\" not found")));
        }
    }
    if let Some(name) = typed.name.as_deref().filter(|n| !n.is_empty()) {
        validate::check_volume_name(name)?;
    }
    if body["DriverOpts"].as_object().is_some_and(|o| !o.is_empty()) {
        return Err(ApiError::bad_request("berth's local volumes take no driver options (type, device, o)"));
    }
    let labels: BTreeMap<String, String> = body["Labels"]
        .as_object()
        .map(|o| o.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default();
    let v = st.containers.volumes.create(body["Name"].as_str(), labels)?;
    Ok((StatusCode::CREATED, Json(st.containers.volumes.describe(&v))))
}

async fn inspect(State(st): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let vols = &st.containers.volumes;
    let v = vols.get(&name).ok_or_else(|| ApiError::not_found(refusal::no_such_volume(&name)))?;
    Ok(Json(vols.describe(&v)))
}

async fn remove(State(st): State<AppState>, Path(name): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    let force = matches!(q.get("force").map(String::as_str), Some("1" | "true"));
    if force && st.containers.volumes.get(&name).is_none() {
        return Ok(StatusCode::NO_CONTENT);
    }
    // Refused (404, or 409 while a container uses it) in plan::remove_volume.
    st.containers.volumes.remove(&name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Removes the volumes no container uses: anonymous ones, and named ones
/// too before API 1.42 or with the `all` filter (`docker volume prune -a`).
async fn prune(State(st): State<AppState>, version: super::ApiVersion, Query(q): Q) -> ApiResult<Json<Value>> {
    let f = super::filters::from_query(&q)?;
    super::filters::check_keys(&f, &["label", "label!", "all"])?;
    let named_too = super::versions::prune_named_volumes(version, &f)?;
    let vols = &st.containers.volumes;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for v in vols.list() {
        if !(v.anonymous || named_too) || !st.containers.using_volume(&v.name).is_empty() || !matches_filters(&v, false, &f) {
            continue;
        }
        let size = vols.size(&v.name);
        if vols.remove(&v.name).is_ok() {
            reclaimed += size;
            deleted.push(v.name);
        }
    }
    Ok(Json(json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_pick_volumes_as_the_cli_asks() {
        let v = VolumeRecord {
            name: "webvol".into(),
            created: String::new(),
            labels: [("lab".to_string(), "1".to_string())].into(),
            anonymous: false,
        };
        let f = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert!(matches_filters(&v, false, &f(r#"{"dangling": {"true": true}}"#)));
        assert!(!matches_filters(&v, true, &f(r#"{"dangling": {"true": true}}"#)));
        assert!(matches_filters(&v, true, &f(r#"{"name": {"web": true}, "label": {"lab=1": true}}"#)));
        assert!(!matches_filters(&v, true, &f(r#"{"label": {"other": true}}"#)));
        // label!: only volumes without it.
        assert!(!matches_filters(&v, false, &f(r#"{"label!": {"lab": true}}"#)));
        assert!(!matches_filters(&v, false, &f(r#"{"label!": {"lab=1": true}}"#)));
        assert!(matches_filters(&v, false, &f(r#"{"label!": {"lab=2": true}, "name": {"web": true}}"#)));
    }
}
