//! Gitea's JSON as it goes over the wire: Go's `json.MarshalIndent` byte format, RFC 3339
//! timestamps, delivery UUIDs, and the user and repository objects every payload embeds.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The user the fake acts as (the token's owner, the sender of its webhooks).
pub const FAKE_USER: &str = "gitea-fake";

/// The user id of [`FAKE_USER`].
const FAKE_USER_ID: u64 = 1;

/// `value` as Go's `json.MarshalIndent(v, "", "  ")` prints it: 2-space indent, `": "`
/// between key and value, `[]`/`{}` for empty containers, no trailing newline, and Go's
/// HTML-safe escaping of `<`, `>`, `&` and U+2028/U+2029 (serde_json leaves them raw).
pub fn go_indent(value: &Value) -> String {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_else(|_| "null".to_string());
    // These characters can only occur inside JSON strings, so replacing them is safe.
    let mut out = String::with_capacity(pretty.len());
    for c in pretty.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

/// Now, as Go prints a UTC `time.Time` with second precision: `2024-05-01T12:00:00Z`.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    rfc3339(secs)
}

/// `secs` since the Unix epoch as an RFC 3339 UTC timestamp.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil conversion (proleptic Gregorian calendar).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A random-looking version-4 UUID, unique per `seed` within a process run, for
/// `X-Gitea-Delivery`. Hashing time, pid and a counter avoids a dependency on a RNG crate.
pub fn delivery_uuid(seed: u64) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let digest = Sha256::new()
        .chain_update(nanos.to_le_bytes())
        .chain_update(std::process::id().to_le_bytes())
        .chain_update(seed.to_le_bytes())
        .finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A sha-1-shaped id for commits the fake invents in memory mode.
pub fn fake_sha(seed: &str) -> String {
    hex::encode(&Sha256::digest(seed.as_bytes())[..20])
}

/// Gitea's `User` object for `login`.
pub fn user(base_url: &str, login: &str, id: u64) -> Value {
    json!({
        "id": id,
        "login": login,
        "login_name": "",
        "source_id": 0,
        "full_name": "",
        "email": format!("{login}@localhost"),
        "avatar_url": format!("{base_url}/avatars/{login}"),
        "html_url": format!("{base_url}/{login}"),
        "language": "",
        "is_admin": false,
        "last_login": "0001-01-01T00:00:00Z",
        "created": "2024-01-01T00:00:00Z",
        "restricted": false,
        "active": true,
        "prohibit_login": false,
        "location": "",
        "website": "",
        "description": "",
        "visibility": "public",
        "followers_count": 0,
        "following_count": 0,
        "starred_repos_count": 0,
        "username": login
    })
}

/// The fake's own user, as [`user`].
pub fn fake_user(base_url: &str) -> Value {
    user(base_url, FAKE_USER, FAKE_USER_ID)
}

/// Gitea's `Repository` object (the fields a client or receiver plausibly reads).
pub fn repository(base_url: &str, full_name: &str, id: u64) -> Value {
    let (owner, name) = full_name.split_once('/').unwrap_or((full_name, full_name));
    let mut repo = json!({
        "id": id,
        "owner": user(base_url, owner, 1000 + id),
        "name": name,
        "full_name": full_name,
        "description": "",
        "empty": false,
        "private": false,
        "fork": false,
        "template": false,
        "parent": null,
        "mirror": false,
        "size": 0,
        "language": "",
        "languages_url": format!("{base_url}/api/v1/repos/{full_name}/languages"),
        "html_url": format!("{base_url}/{full_name}"),
        "url": format!("{base_url}/api/v1/repos/{full_name}"),
        "link": "",
        "ssh_url": format!("git@localhost:{full_name}.git")
    });
    // Two literals: one would pass `json!`'s macro recursion limit.
    let settings = json!({
        "clone_url": format!("{base_url}/{full_name}.git"),
        "original_url": "",
        "website": "",
        "stars_count": 0,
        "forks_count": 0,
        "watchers_count": 0,
        "open_issues_count": 0,
        "open_pr_counter": 0,
        "release_counter": 0,
        "default_branch": "main",
        "archived": false,
        "created_at": "2024-01-01T00:00:00Z",
        "updated_at": "2024-01-01T00:00:00Z",
        "has_issues": true,
        "has_pull_requests": true,
        "allow_merge_commits": true,
        "allow_rebase": true,
        "allow_rebase_explicit": true,
        "allow_squash_merge": true,
        "allow_fast_forward_only_merge": true,
        "default_merge_style": "merge",
        "default_delete_branch_after_merge": false,
        "internal": false,
        "mirror_interval": "",
        "object_format_name": "sha1"
    });
    if let (Some(repo), Value::Object(settings)) = (repo.as_object_mut(), settings) {
        repo.extend(settings);
    }
    repo
}

/// Gitea's `PayloadCommit` for `sha` with `message` at `timestamp`.
pub fn payload_commit(
    base_url: &str,
    full_name: &str,
    sha: &str,
    message: &str,
    timestamp: &str,
) -> Value {
    let who = json!({ "name": FAKE_USER, "email": format!("{FAKE_USER}@localhost"), "username": FAKE_USER });
    json!({
        "id": sha,
        "message": message,
        "url": format!("{base_url}/{full_name}/commit/{sha}"),
        "author": who,
        "committer": who,
        "verification": null,
        "timestamp": timestamp,
        "added": [],
        "removed": [],
        "modified": []
    })
}

/// The `APIError` body: `{"message": …, "url": …}`.
pub fn api_error(base_url: &str, message: &str) -> Value {
    json!({ "message": message, "url": format!("{base_url}/api/swagger") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indentation_and_escaping_match_go_marshal_indent() {
        let v = json!({"a": [], "b": {}, "c": [1, {"d": "x<y>&z"}]});
        // What Go's json.MarshalIndent(v, "", "  ") prints for the same map.
        let go = "{\n  \"a\": [],\n  \"b\": {},\n  \"c\": [\n    1,\n    {\n      \"d\": \"x\\u003cy\\u003e\\u0026z\"\n    }\n  ]\n}";
        assert_eq!(go_indent(&v), go);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_709_210_096), "2024-02-29T12:34:56Z");
    }

    #[test]
    fn delivery_ids_are_v4_uuids_and_differ() {
        let (a, b) = (delivery_uuid(1), delivery_uuid(2));
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }
}
