-- Benchmark only: multiplies the decisions, findings and feedback already in the database
-- :k times by SQL, each copy with new ids (md5 of the old id and the copy number) and moved
-- back k minutes. The copies are NOT hash-chained (audit verify reports them): this is for
-- timing report queries at a scale the writer cannot seed in the time at hand.
-- psql -v k=100 -f scripts/bench-reports-replicate.sql
SET session_replication_role = default;
SELECT set_config('bench.k', :'k', false);
DO $$
DECLARE
    k int := current_setting('bench.k')::int;
    tbl text;
    cols text;
    sel text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['decisions', 'findings', 'feedback'] LOOP
        SELECT string_agg(quote_ident(column_name), ', ' ORDER BY ordinal_position),
               string_agg(CASE
                   WHEN column_name IN ('decision_id', 'card_uuid', 'feedback_id')
                       THEN format('(md5(t.%I::text || '':'' || k::text))::uuid', column_name)
                   WHEN column_name IN ('evaluated_at', 'outcome_at')
                       THEN format('t.%I - k * interval ''1 minute''', column_name)
                   ELSE 't.' || quote_ident(column_name) END, ', ' ORDER BY ordinal_position)
          INTO cols, sel
          FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = tbl;
        EXECUTE format('INSERT INTO %I (%s) SELECT %s FROM %I t, generate_series(1, %s) k',
                       tbl, cols, sel, tbl, k);
    END LOOP;
END;
$$;
