//! `GET /system/df` (`docker system df [-v]`): what images, containers,
//! volumes and the build cache take on disk, in Docker's shape (API < 1.52:
//! LayersSize and one list per kind). From API 1.42 `?type=` may ask for
//! some kinds only.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use super::{ApiVersion, AppState};
use crate::error::{ApiError, ApiResult, ErrorKind};

pub fn router() -> Router<AppState> {
    Router::new().route("/system/df", get(disk_usage))
}

/// Which kinds a request asks for: all of them before 1.42 or without
/// `type`; else those named, and an unknown name is a 400.
fn kinds(v: ApiVersion, query: Option<&str>) -> ApiResult<BTreeSet<&'static str>> {
    const ALL: [&str; 4] = ["container", "image", "volume", "build-cache"];
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).map_err(|e| ApiError::bad_request(format!("invalid query: {e}")))?;
    let asked: Vec<&String> = pairs.iter().filter(|(k, _)| k == "type").map(|(_, t)| t).collect();
    if !v.at_least(42) || asked.is_empty() {
        return Ok(ALL.into_iter().collect());
    }
    asked
        .into_iter()
        .map(|t| ALL.into_iter().find(|k| k == t).ok_or_else(|| ApiError::bad_request(format!("unknown object type: {t}"))))
        .collect()
}

async fn disk_usage(State(st): State<AppState>, v: ApiVersion, RawQuery(query): RawQuery) -> ApiResult<Json<Value>> {
    let kinds = kinds(v, query.as_deref())?;
    let answer = tokio::task::spawn_blocking(move || measure(&st, v, &kinds))
        .await
        .map_err(|e| ApiError::new(ErrorKind::Internal, e.to_string()))?;
    Ok(Json(answer))
}

fn measure(st: &AppState, v: ApiVersion, kinds: &BTreeSet<&str>) -> Value {
    let mut out = Map::new();
    let records: Vec<_> = st.containers.list().iter().map(|c| c.record()).collect();
    let images = st.images.list();
    // How many images hold each layer: a layer two hold is shared.
    let mut holders: BTreeMap<&str, (u64, usize)> = BTreeMap::new();
    for i in &images {
        for l in &i.layers {
            holders.entry(&l.chain_id).or_insert((l.size, 0)).1 += 1;
        }
    }
    if kinds.contains("image") {
        out.insert("LayersSize".into(), json!(holders.values().map(|(size, _)| size).sum::<u64>()));
        let list: Vec<Value> = images
            .iter()
            .map(|i| {
                let mut s = super::images::summary(st, v, i);
                s["Containers"] = json!(records.iter().filter(|r| r.image_id == i.id).count());
                s["SharedSize"] = json!(i
                    .layers
                    .iter()
                    .filter(|l| holders.get(l.chain_id.as_str()).is_some_and(|h| h.1 > 1))
                    .map(|l| l.size)
                    .sum::<u64>());
                s
            })
            .collect();
        out.insert("Images".into(), Value::Array(list));
    }
    if kinds.contains("container") {
        let list: Vec<Value> = records
            .iter()
            .map(|r| {
                let mut row = super::containers::summary(st, v, r);
                super::containers::add_sizes(&st.images, r, &mut row);
                row
            })
            .collect();
        out.insert("Containers".into(), Value::Array(list));
    }
    if kinds.contains("volume") {
        let vols = &st.containers.volumes;
        let list: Vec<Value> = vols
            .list()
            .iter()
            .map(|vol| {
                let mut d = vols.describe(vol);
                d["UsageData"] = json!({"Size": vols.size(&vol.name), "RefCount": st.containers.using_volume(&vol.name).len()});
                d
            })
            .collect();
        out.insert("Volumes".into(), Value::Array(list));
    }
    if kinds.contains("build-cache") {
        let cache = build_cache(st, &holders);
        // BuilderSize (the cache's total) until API 1.42 removed it.
        if !v.at_least(42) {
            out.insert("BuilderSize".into(), json!(cache.iter().filter_map(|c| c["Size"].as_u64()).sum::<u64>()));
        }
        out.insert("BuildCache".into(), Value::Array(cache));
    }
    Value::Object(out)
}

/// The build cache's records: one per cached step. A step's size is the
/// layer its result added, counted once; a layer an image holds too is
/// shared (a `docker builder prune` would not free it).
fn build_cache(st: &AppState, held: &BTreeMap<&str, (u64, usize)>) -> Vec<Value> {
    let Some(builder) = &st.builder else { return Vec::new() };
    let mut counted = BTreeSet::new();
    builder
        .cache_entries()
        .into_iter()
        .map(|(key, top)| {
            let size = match &top {
                Some(chain) if counted.insert(chain.clone()) => st.images.layer_size(chain),
                _ => 0,
            };
            let shared = top.as_deref().is_some_and(|c| held.contains_key(c));
            json!({
                "ID": format!("{key:.25}"),
                "Parent": "",
                "Parents": null,
                "Type": "regular",
                "Description": "",
                "InUse": false,
                "Shared": shared,
                "Size": size,
                "CreatedAt": "0001-01-01T00:00:00Z",
                "LastUsedAt": null,
                "UsageCount": 0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_select_kinds_from_1_42_and_unknown_ones_are_refused() {
        let v50 = ApiVersion(1, 50);
        assert_eq!(kinds(v50, None).unwrap().len(), 4);
        assert_eq!(kinds(v50, Some("type=image&type=volume")).unwrap(), ["image", "volume"].into_iter().collect());
        assert_eq!(kinds(ApiVersion(1, 41), Some("type=image")).unwrap().len(), 4, "1.41 had no type");
        assert_eq!(kinds(v50, Some("type=layers")).unwrap_err().message, "unknown object type: layers");
    }
}
