-- Payloads are stored compressed (zstd), a sixth of their size for GitHub's JSON: a delivery's
-- commit then syncs a page or two instead of four. Rows stored before keep their text in
-- `payload` and have no `compressed`.
ALTER TABLE delivery_payloads ADD COLUMN compressed BYTES;
