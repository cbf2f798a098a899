//! Plane's `BasePaginator`: `per_page` (default and maximum 1000) and a
//! `"<per_page>:<page>:<is_prev>"` cursor in, the exact envelope out. `next_cursor` is never
//! empty; only `next_page_results` tells whether another page exists.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// Page size when the request names none, and the largest accepted.
pub const MAX_PER_PAGE: usize = 1000;

/// The 400 body of a bad `per_page` or `cursor`, DRF's `ParseError` shape.
pub fn parse_error(detail: &str) -> Value {
    json!({ "detail": detail })
}

/// One page of `items` as Plane answers it, or the 400 body for bad parameters.
pub fn paginate(query: &BTreeMap<String, String>, items: Vec<Value>) -> Result<Value, Value> {
    let per_page = match query.get("per_page") {
        None => MAX_PER_PAGE,
        Some(raw) => raw
            .parse::<usize>()
            .map_err(|_| parse_error("Invalid per_page parameter."))?,
    };
    if per_page > MAX_PER_PAGE {
        return Err(parse_error(&format!(
            "Invalid per_page value. Cannot exceed {MAX_PER_PAGE}."
        )));
    }
    let (value, page) = match query.get("cursor") {
        None => (per_page, 0),
        Some(raw) => parse_cursor(raw).ok_or_else(|| parse_error("Invalid cursor parameter."))?,
    };
    // The cursor's own page size wins over `per_page`, as in `OffsetPaginator`; a zero one
    // falls back to `per_page`.
    let limit = if value == 0 { per_page } else { value }.max(1);
    let total = items.len();
    let offset = page.saturating_mul(limit);
    let results: Vec<Value> = items.into_iter().skip(offset).take(limit).collect();
    let has_next = total > offset + results.len();
    Ok(json!({
        "grouped_by": null,
        "sub_grouped_by": null,
        "total_count": total,
        "next_cursor": format!("{limit}:{}:0", page + 1),
        "prev_cursor": format!("{limit}:{}:1", page as i64 - 1),
        "next_page_results": has_next,
        "prev_page_results": page > 0,
        "count": results.len(),
        "total_pages": total.div_ceil(limit),
        "total_results": total,
        "extra_stats": null,
        "results": results,
    }))
}

/// `(per_page, page)` from `"<per_page>:<page>:<is_prev>"`; a negative page (what a
/// `prev_cursor` of the first page names) is refused like any malformed cursor.
fn parse_cursor(raw: &str) -> Option<(usize, usize)> {
    let mut parts = raw.split(':');
    let value = parts.next()?.parse::<usize>().ok()?;
    let page = parts.next()?.parse::<usize>().ok()?;
    let is_prev = parts.next()?.parse::<u8>().ok()?;
    (is_prev <= 1 && parts.next().is_none()).then_some((value, page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn items(n: usize) -> Vec<Value> {
        (0..n).map(|i| json!(i)).collect()
    }

    #[test]
    fn last_page_still_has_a_next_cursor_but_no_next_results() {
        let page = paginate(&query(&[("per_page", "2"), ("cursor", "2:2:0")]), items(5)).unwrap();
        assert_eq!(page["results"], json!([4]));
        assert_eq!(page["next_cursor"], "2:3:0");
        assert_eq!(page["next_page_results"], false);
        assert_eq!(page["prev_page_results"], true);
        assert_eq!(page["total_pages"], 3);
        assert_eq!(page["total_count"], 5);
        assert_eq!(page["count"], 1);
    }

    #[test]
    fn first_page_defaults_to_a_thousand() {
        let page = paginate(&query(&[]), items(3)).unwrap();
        assert_eq!(page["count"], 3);
        assert_eq!(page["next_cursor"], "1000:1:0");
        assert_eq!(page["prev_cursor"], "1000:-1:1");
        assert_eq!(page["next_page_results"], false);
    }

    #[test]
    fn bad_parameters_answer_drf_parse_errors() {
        let too_big = paginate(&query(&[("per_page", "1001")]), items(1)).unwrap_err();
        assert_eq!(
            too_big["detail"],
            "Invalid per_page value. Cannot exceed 1000."
        );
        for cursor in ["x", "1:2", "1:a:0", "1:-1:1", "1:0:0:0"] {
            let bad = paginate(&query(&[("cursor", cursor)]), items(1)).unwrap_err();
            assert_eq!(
                bad["detail"], "Invalid cursor parameter.",
                "cursor {cursor}"
            );
        }
    }
}
