//! The SQL of the local forge's pull requests. The partial unique index allows one open pull
//! request per repository and branch, so "ensure" is an insert that falls back to a lookup.

use orchestrator_actors::ports::{PullRequest, StoreError};
use rusqlite::{Connection, OptionalExtension, Row};

use super::tasks::backend;

const COLUMNS: &str = "id, repo, head, base, title, state, created_at";

fn row(r: &Row<'_>) -> rusqlite::Result<PullRequest> {
    Ok(PullRequest {
        number: r.get(0)?,
        repo: r.get(1)?,
        head: r.get(2)?,
        base: r.get(3)?,
        title: r.get(4)?,
        state: r.get(5)?,
        created_at: r.get(6)?,
    })
}

fn open_one(conn: &Connection, repo: &str, head: &str) -> rusqlite::Result<Option<PullRequest>> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM pull_requests WHERE repo = ?1 AND head = ?2 AND state = 'open'"
        ),
        [repo, head],
        row,
    )
    .optional()
}

/// The open pull request of `head`, created when missing; true when created now.
pub(crate) fn ensure_pull_request(
    conn: &mut Connection,
    repo: &str,
    head: &str,
    base: &str,
    title: &str,
) -> Result<(PullRequest, bool), StoreError> {
    let what = format!("ensure a pull request for {repo}:{head}");
    if let Some(pr) = open_one(conn, repo, head).map_err(backend(&what))? {
        return Ok((pr, false));
    }
    let pr = conn
        .query_row(
            &format!(
                "INSERT INTO pull_requests (repo, head, base, title) VALUES (?1, ?2, ?3, ?4)
                 RETURNING {COLUMNS}"
            ),
            [repo, head, base, title],
            row,
        )
        .map_err(backend(&what))?;
    Ok((pr, true))
}

/// Marks the open pull request of `head` merged.
pub(crate) fn mark_merged(
    conn: &mut Connection,
    repo: &str,
    head: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .execute(
            "UPDATE pull_requests SET state = 'merged',
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE repo = ?1 AND head = ?2 AND state = 'open'",
            [repo, head],
        )
        .map_err(backend(format!(
            "mark the pull request of {repo}:{head} merged"
        )))?;
    Ok(n > 0)
}

/// The latest pull request of `head`.
pub(crate) fn latest(
    conn: &Connection,
    repo: &str,
    head: &str,
) -> Result<Option<PullRequest>, StoreError> {
    conn.query_row(
        &format!(
            "SELECT {COLUMNS} FROM pull_requests WHERE repo = ?1 AND head = ?2 ORDER BY id DESC LIMIT 1"
        ),
        [repo, head],
        row,
    )
    .optional()
    .map_err(backend(format!("read the pull request of {repo}:{head}")))
}

#[cfg(test)]
mod tests {
    use orchestrator_actors::ports::PullRequestStore;

    use crate::store::test_support::temp_store;

    #[tokio::test]
    async fn ensuring_twice_gives_the_same_pull_request_and_a_merged_one_is_not_reopened() {
        let (_dir, store) = temp_store().await;
        let (pr, created) = store
            .ensure_pull_request("acme/app", "feature/A-1-x", "main", "A-1 x")
            .await
            .unwrap();
        assert!(created);
        assert_eq!((pr.number, pr.state.as_str()), (1, "open"));
        let (again, created) = store
            .ensure_pull_request("acme/app", "feature/A-1-x", "main", "A-1 x (retitled)")
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(again, pr);
        // Another repo's branch of the same name is another pull request.
        let (other, created) = store
            .ensure_pull_request("acme/lib", "feature/A-1-x", "main", "A-1 x")
            .await
            .unwrap();
        assert!(created);
        assert_eq!(other.number, 2);
        assert!(
            store
                .mark_pull_request_merged("acme/app", "feature/A-1-x")
                .await
                .unwrap()
        );
        assert!(
            !store
                .mark_pull_request_merged("acme/app", "feature/A-1-x")
                .await
                .unwrap()
        );
        let latest = store
            .pull_request("acme/app", "feature/A-1-x")
            .await
            .unwrap()
            .unwrap();
        assert_eq!((latest.number, latest.state.as_str()), (1, "merged"));
        assert!(
            store
                .pull_request("acme/app", "nope")
                .await
                .unwrap()
                .is_none()
        );
    }
}
