-- Tokens of generated images (Gemini's IMAGE output modality) are part of output_tokens, as
-- reasoning tokens are, and are billed at the model's output image rate ($30 per 1M for
-- gemini-2.5-flash-image, against $2.50 for its text). A constant default adds the column
-- without rewriting the table; the check is NOT VALID so that adding it does not scan the
-- rows already stored (all 0), yet every new row is checked.
ALTER TABLE telemetry_llm_events
    ADD COLUMN output_image_tokens bigint NOT NULL DEFAULT 0;
ALTER TABLE telemetry_llm_events
    ADD CONSTRAINT telemetry_llm_events_image_le_output
    CHECK (output_image_tokens >= 0 AND output_image_tokens <= output_tokens) NOT VALID;
