-- Back to one plain conversation_turns table with every row (the partitions' rows are
-- copied), its original keys, and whatever grants/policies/indexes the partitioned table had.

ALTER TABLE conversation_turns RENAME TO conversation_turns_partitioned;
ALTER TABLE conversation_turns_partitioned
    RENAME CONSTRAINT conversation_turns_pkey TO conversation_turns_partitioned_pkey;

CREATE TABLE conversation_turns (
    LIKE conversation_turns_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS
        INCLUDING GENERATED INCLUDING COMMENTS INCLUDING STORAGE,
    CONSTRAINT conversation_turns_pkey PRIMARY KEY (id),
    -- Turn numbers are unique per session; add_turn also makes them gap-free.
    CONSTRAINT conversation_turns_session_number_key UNIQUE (session_id, turn_number)
);
-- (A DO block rather than a SELECT: yoyo would print a SELECT's result.)
DO $$ BEGIN
    PERFORM digitwin_copy_table_extras('conversation_turns_partitioned', 'conversation_turns');
END $$;
INSERT INTO conversation_turns SELECT * FROM conversation_turns_partitioned;

DROP TABLE conversation_turns_partitioned;  -- and with it every partition
DROP FUNCTION IF EXISTS conversation_turns_drop_partitions(timestamptz);
DROP FUNCTION IF EXISTS conversation_turns_ensure_partitions(integer);
DROP FUNCTION IF EXISTS conversation_turns_create_partition(timestamptz);
DROP FUNCTION IF EXISTS digitwin_copy_table_extras(regclass, regclass);
