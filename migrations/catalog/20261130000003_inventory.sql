-- A variant's inventory levels: the available quantity at each location stocking it, as
-- {"<location id>": quantity}. NULL until a pull that reads levels (a full pull, an exported
-- incremental pull, a reconciliation) or a push has seen them; reads that do not carry levels
-- (webhook payloads, paged pulls) keep what is stored.
ALTER TABLE cowans_variants ADD COLUMN inventory jsonb
    CHECK (inventory IS NULL OR jsonb_typeof(inventory) = 'object');

-- What a newer pending change leaves of an older one's field (`{"base", "proposed"}` each):
-- for keyed values (inventory by location), the keys the newer one does not name; NULL when it
-- names them all or the values are not keyed (the newer change then takes the field over).
CREATE FUNCTION cowans_field_left(old jsonb, new jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN jsonb_typeof(old->'proposed') = 'object'
                 AND jsonb_typeof(new->'proposed') = 'object'
                 AND (old->'proposed') - ARRAY(SELECT jsonb_object_keys(new->'proposed')) <> '{}'
           THEN jsonb_build_object(
                 'base', (old->'base') - ARRAY(SELECT jsonb_object_keys(new->'proposed')),
                 'proposed', (old->'proposed') - ARRAY(SELECT jsonb_object_keys(new->'proposed')))
           END
$$;
