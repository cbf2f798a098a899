-- 0008: deliveries of one family (source, kind and the repository or project they concern)
-- are near copies of one another, so a body is compressed against an earlier body of its
-- family, its dictionary: a 4 KiB Gitea status keeps some 100 bytes instead of 1.9 KiB.
-- Bodies name the dictionary they need; a dictionary is never changed or dropped.
CREATE TABLE body_dictionaries (
    id          INTEGER PRIMARY KEY,
    source      TEXT NOT NULL,              -- plane | gitea
    kind        TEXT NOT NULL,              -- as in events.kind
    scope       TEXT NOT NULL,              -- the repository or project
    body        BLOB NOT NULL,              -- a body of the family, as received
    created_at  TEXT NOT NULL
);
CREATE INDEX body_dictionaries_family ON body_dictionaries (source, kind, scope);
-- encoding gains lz4-dict: an LZ4 block (u32 LE size first) against this dictionary.
ALTER TABLE event_bodies ADD COLUMN dictionary_id INTEGER REFERENCES body_dictionaries (id);
