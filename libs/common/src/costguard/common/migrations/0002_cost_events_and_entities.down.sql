DROP TABLE cost_monthly_summary;
DROP TABLE entity_costs;
DROP TABLE cost_events;
