-- Send later: a campaign waits in 'scheduled' until scheduled_at, when the fan-out starts it
-- (status and outbox command in one transaction, so it starts once, whatever restarts).
ALTER TABLE campaigns DROP CONSTRAINT campaigns_status_check;
ALTER TABLE campaigns ADD CONSTRAINT campaigns_status_check CHECK (status IN
    ('draft', 'scheduled', 'queued', 'sending', 'paused', 'cancelled', 'finished'));
ALTER TABLE campaigns ADD COLUMN scheduled_at timestamptz;
CREATE INDEX campaigns_scheduled ON campaigns (scheduled_at) WHERE status = 'scheduled';
