-- A claim reads the slot counts without locking them, decides, and takes its slots at the end of its
-- statement; the slot rows are then held only through its commit (holding them from the decision on
-- serialized every claim and report of a cluster whose tasks share nodes: 3-node tasks fell by a quarter).
-- When a concurrent claim took the slots first, the claim's statement calls this: it fails as a
-- serialization conflict, undoing the claim, and is run again from fresh counts.
CREATE FUNCTION taskyard_slots_taken_meanwhile(kind text, name text) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a concurrent claim took the last slots of % %', kind, name USING ERRCODE = 'serialization_failure';
END $$;
