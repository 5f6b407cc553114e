-- Issue 4: a daily cost cap and alert thresholds on budgets, a notification on every
-- budget change (the throttle reloads within a second), the reservation an event
-- settles, and the threshold alerts the gateway delivers.

ALTER TABLE cost_budgets
    ADD COLUMN cost_usd_per_day numeric(18, 6),
    ADD COLUMN alert_thresholds numeric(6, 4)[] NOT NULL DEFAULT '{0.8,1.0}',
    ADD CONSTRAINT cost_budgets_cost_non_negative CHECK (coalesce(cost_usd_per_day, 0) >= 0);

CREATE FUNCTION costguard_notify_budget_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('costguard_budgets', coalesce(NEW.apply_scope, OLD.apply_scope));
    RETURN NULL;
END
$$;

CREATE TRIGGER cost_budgets_notify
    AFTER INSERT OR UPDATE OR DELETE ON cost_budgets
    FOR EACH ROW EXECUTE FUNCTION costguard_notify_budget_change();

ALTER TABLE telemetry_job_events ADD COLUMN reservation_id varchar(64);
ALTER TABLE telemetry_llm_events ADD COLUMN reservation_id varchar(64);

CREATE TABLE budget_alerts (
    id                bigserial PRIMARY KEY,
    day               date NOT NULL,
    apply_scope       varchar(96) NOT NULL,
    metric            varchar(32) NOT NULL,
    threshold         numeric(6, 4) NOT NULL,
    kind              varchar(16) NOT NULL DEFAULT 'crossed',
    used              numeric(24, 6) NOT NULL,
    cap               numeric(24, 6) NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    delivered_at      timestamptz,
    delivery_attempts integer NOT NULL DEFAULT 0,
    last_error        text,
    CONSTRAINT budget_alerts_once UNIQUE (day, apply_scope, metric, threshold, kind),
    CONSTRAINT budget_alerts_kind CHECK (kind IN ('crossed', 'resolved'))
);
CREATE INDEX budget_alerts_undelivered_idx ON budget_alerts (created_at)
    WHERE delivered_at IS NULL;
