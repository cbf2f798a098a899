//! What reaches a branch and `main`: append-only files merged with the union driver, and
//! work that still holds conflict markers never committed.

use super::{GitError, MergeOutcome, branch_name, git, setup, task_with, write};

#[tokio::test]
async fn append_only_files_merge_with_the_union_driver_and_others_still_conflict() {
    let s = setup().await;
    s.ws.set_append_only(&s.clone, &["CHANGELOG.md".to_string()])
        .await
        .unwrap();
    // Idempotent: a second call changes nothing.
    s.ws.set_append_only(&s.clone, &["CHANGELOG.md".to_string()])
        .await
        .unwrap();
    let base = "# Changelog\n\n- the beginning\n";
    let (_, seed, _) = task_with(
        &s,
        "T-20",
        "seed",
        &[("CHANGELOG.md", base), ("NOTES.md", "x\n")],
    )
    .await;
    let merged =
        s.ws.merge_into_main(&s.clone, &seed, "Merge T-20")
            .await
            .unwrap();
    assert!(matches!(merged, MergeOutcome::Merged { .. }), "{merged:?}");
    // Two tasks each add their entry at the same place, and each edits the same line of a
    // file that is not append-only.
    let (_, one, _) = task_with(
        &s,
        "T-21",
        "one",
        &[
            ("CHANGELOG.md", &format!("{base}- one\n")),
            ("NOTES.md", "one\n"),
        ],
    )
    .await;
    let (_, two, _) = task_with(
        &s,
        "T-22",
        "two",
        &[("CHANGELOG.md", &format!("{base}- two\n"))],
    )
    .await;
    let (_, three, _) = task_with(&s, "T-23", "three", &[("NOTES.md", "three\n")]).await;
    for branch in [&one, &two] {
        let outcome =
            s.ws.merge_into_main(&s.clone, branch, "Merge")
                .await
                .unwrap();
        assert!(
            matches!(outcome, MergeOutcome::Merged { .. }),
            "{branch}: {outcome:?}"
        );
    }
    let changelog = git(&s.origin, &["show", "main:CHANGELOG.md"])
        .await
        .unwrap();
    assert!(
        changelog.contains("- one") && changelog.contains("- two"),
        "{changelog}"
    );
    assert!(!changelog.contains("<<<<<<<"), "{changelog}");
    let conflict =
        s.ws.merge_into_main(&s.clone, &three, "Merge")
            .await
            .unwrap();
    assert_eq!(
        conflict,
        MergeOutcome::Conflict {
            files: vec!["NOTES.md".to_string()]
        }
    );
    // The repository itself carries no attributes of ours.
    let tree = git(&s.origin, &["ls-tree", "-r", "--name-only", "main"])
        .await
        .unwrap();
    assert!(!tree.contains(".gitattributes"), "{tree}");
}

#[tokio::test]
async fn work_that_still_holds_conflict_markers_is_never_committed() {
    let s = setup().await;
    let branch = branch_name("T-30", "markers");
    let wt =
        s.ws.create_worktree(&s.clone, "T-30", &branch)
            .await
            .unwrap();
    let head = s.ws.head_sha(&wt).await.unwrap();
    write(
        &wt,
        "src/lib.txt",
        "start\n<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> origin/main\nend\n",
    );
    write(&wt, "README-extra.md", "Title\n=======\n\ntext\n");
    let err =
        s.ws.commit_all(&s.clone, &wt, "feat: markers")
            .await
            .unwrap_err();
    assert!(
        matches!(&err, GitError::ConflictMarkers { files, .. } if files == &["src/lib.txt".to_string()]),
        "{err}"
    );
    assert!(err.to_string().contains("src/lib.txt"), "{err}");
    assert_eq!(s.ws.head_sha(&wt).await.unwrap(), head, "nothing committed");
    // Resolved: committed, the Markdown underline included.
    write(&wt, "src/lib.txt", "start\nours and theirs\nend\n");
    let sha =
        s.ws.commit_all(&s.clone, &wt, "feat: resolved")
            .await
            .unwrap();
    assert!(sha.is_some());
}
