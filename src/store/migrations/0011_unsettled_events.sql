-- 0011: the reconciler looks, every interval, for deliveries that were accepted but never
-- acted on: those whose acting failed and those left without an outcome. They are a handful
-- among every delivery ever received, so a partial index holds just them.
CREATE INDEX events_unsettled ON events (id) WHERE outcome IS NULL OR outcome = 'failed';
