-- Issue 6: every webhook delivery attempt series, for the delivery log.
CREATE TABLE alert_deliveries (
    id            bigserial PRIMARY KEY,
    alert_id      bigint REFERENCES budget_alerts (id) ON DELETE SET NULL,
    kind          varchar(16) NOT NULL,
    url_host      varchar(255) NOT NULL,
    status        integer,
    attempts      integer NOT NULL,
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_deliveries_created_idx ON alert_deliveries (created_at DESC);
