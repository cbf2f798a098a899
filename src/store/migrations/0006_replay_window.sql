-- 0006: a replayed body is recognised from the store's in-memory replay window, loaded from
-- this table on first use; the index on random body hashes wrote one more page per delivery.
-- Loading reads the window's rows by time; that index grows at its end, where a whole batch
-- of deliveries shares one page.
DROP INDEX events_body_hash;
CREATE INDEX events_received_at ON events (received_at);
