-- 0005: the chat message of each task's live tracker card, so a restart keeps editing it.

CREATE TABLE tracker_cards (
    work_item_id TEXT    PRIMARY KEY REFERENCES tasks(work_item_id),
    message_id   INTEGER NOT NULL,
    updated_at   TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
