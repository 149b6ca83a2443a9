-- Fencing tokens that a crash of the server cannot hand out twice.
--
-- Claims and permits commit asynchronously (engine.async_commit, the default): a crash of the
-- server can lose the last fraction of a second of them. A lost claim is harmless (the job is
-- available again), but the sequence behind it comes back from the crash where its last flushed
-- WAL record left it, and hands the same numbers out again. A bare nextval as the fencing token
-- would then give a reclaim of the job the token of the lost claim, and the first attempt's ack,
-- still on its way, would pass the fence.
--
-- The token is therefore the claim's millisecond (since 2026, in the high 40 bits: until 2060)
-- and the sequence's low 23 bits. A reissued number comes with a later millisecond, since a
-- crash and its recovery take longer than one; two claims of the same millisecond differ in the
-- sequence, which would have to advance by 8,388,608 within it to repeat. Tokens are compared
-- for equality only.
CREATE FUNCTION cowans_fence() RETURNS bigint
LANGUAGE sql VOLATILE PARALLEL UNSAFE
AS $$
    SELECT ((floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint - 1767225600000) << 23)
         | (nextval('cowans_lease_seq') & 8388607)
$$;
