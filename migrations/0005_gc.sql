-- Workspace GC. A workspace being reclaimed is `reclaiming` and carries the claim of the pass
-- that took it: `gc_claim` (unique per process), `gc_claimed_by` (the instance) and when. The
-- claim is a conditional update that also checks that no live session works in, holds or
-- depends on the workspace, so a session starting to use it and a pass never both win.
-- `gc_removing` says the decision is final and removal has begun (a crash mid-removal is
-- finished by a later pass, never undone); `gc_note` says why GC last could not reclaim it
-- (logged when it changes, not every pass); `reclaimed_bytes` is what removing it freed.

ALTER TABLE workspaces ADD COLUMN gc_claim TEXT;
ALTER TABLE workspaces ADD COLUMN gc_claimed_by TEXT;
ALTER TABLE workspaces ADD COLUMN gc_claimed_at BIGINT;
ALTER TABLE workspaces ADD COLUMN gc_removing BIGINT NOT NULL DEFAULT 0;
ALTER TABLE workspaces ADD COLUMN gc_note TEXT;
ALTER TABLE workspaces ADD COLUMN reclaimed_bytes BIGINT;
CREATE INDEX workspaces_status ON workspaces (status);

-- When each mirror last had a `git gc`, so it runs at most every so often per mirror.
CREATE TABLE mirror_maintenance (
    mirror TEXT PRIMARY KEY,
    gc_at BIGINT NOT NULL
);
