-- The random nonce in the hidden markers of an objective's comments (status, questions, the
-- end): a marker someone else plants on the issue cannot be guessed. Objectives from before
-- have none and keep their old markers.
ALTER TABLE objectives ADD COLUMN marker_nonce TEXT NOT NULL DEFAULT '';
