-- The manager said the issue needs no change at all: with nothing merged, the issue is then
-- closed as not planned; otherwise it is left open for the humans.
ALTER TABLE objectives ADD COLUMN no_change_needed BIGINT NOT NULL DEFAULT 0;
