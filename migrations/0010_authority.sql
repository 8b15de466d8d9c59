-- Authority. An objective's work is held while foreman may not act for its repository (the
-- installation was suspended, or the repository removed from it) until a human says
-- `/foreman resume`; a repository removed from its installation is remembered as removed
-- until it is added back. An objective records who started it (the label's sender, or who
-- said `/foreman retry`): its pull requests ask them for a review. An edit of the issue's
-- text by someone who could not have started foreman is noted, and not given to agents.
ALTER TABLE objectives ADD COLUMN held TEXT;
ALTER TABLE objectives ADD COLUMN started_by TEXT;
ALTER TABLE objectives ADD COLUMN text_edited_by TEXT;
ALTER TABLE repositories ADD COLUMN removed_at BIGINT;
