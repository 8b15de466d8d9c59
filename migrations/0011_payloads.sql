-- A delivery's payload lives apart from its row, in parts of at most 1 MiB. Every claim and
-- status change rewrites the delivery's row (SQLite rebuilds the whole record on update), and
-- every statement copies what it binds or returns a few times: neither may mean copying a
-- payload of up to 25 MiB. Parts are written once, and read once, in order.
CREATE TABLE delivery_payloads (
    seq BIGINT NOT NULL,
    part BIGINT NOT NULL,
    payload TEXT NOT NULL,
    PRIMARY KEY (seq, part)
);
INSERT INTO delivery_payloads (seq, part, payload) SELECT seq, 0, payload FROM deliveries;
ALTER TABLE deliveries DROP COLUMN payload;
-- Its size in bytes, so that it is read back into a buffer of the right size (0: unknown).
ALTER TABLE deliveries ADD COLUMN payload_bytes BIGINT NOT NULL DEFAULT 0;
