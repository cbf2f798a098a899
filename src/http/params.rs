//! Query-parameter parsing shared by the routes: strict, with errors that name the parameter
//! and the value.

use std::collections::HashMap;

use super::ApiError;

/// Parses one optional whole-number query parameter within `range`.
pub(super) fn number_param(
    query: &HashMap<String, String>,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, ApiError> {
    let Some(raw) = query.get(name) else {
        return Ok(None);
    };
    raw.parse::<u64>()
        .ok()
        .filter(|n| range.contains(n))
        .map(Some)
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "invalid query parameter {name}={raw:?}: expected a whole number from {} to {}",
                range.start(),
                range.end()
            ))
        })
}

/// Rejects query parameters the endpoint does not know.
pub(super) fn only_params(query: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match query.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!(
            "unknown query parameter {k:?} (known: {})",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}
