-- 0007: a delivery's raw body moves to a table of its own, compressed. In `events` a 4 KiB
-- body spilled every row onto an overflow page, and settling the outcome rewrote it all;
-- now the outcome updates a row of some 200 bytes, and a 4 KiB body takes under half a page.
CREATE TABLE event_bodies (
    event_id  INTEGER PRIMARY KEY REFERENCES events (id),
    encoding  TEXT NOT NULL,                -- identity | lz4 (block, u32 LE size first)
    body      BLOB NOT NULL                 -- the raw body as received, encoded
);
INSERT INTO event_bodies (event_id, encoding, body)
    SELECT id, 'identity', CAST(payload AS BLOB) FROM events;
ALTER TABLE events DROP COLUMN payload;
-- The replay window loads newest first by id, the order of arrival: no index on the time.
DROP INDEX events_received_at;
