-- Holds as card and marketplace flows need them (docs/holds.md): several captures of one
-- hold, increments, later expiries, and a final capture past the amount held within the
-- hold's tolerance. Columns are appended to `transfers`, so its row type (which
-- write_batch sends) keeps its earlier columns in place.

-- How far a hold's final capture may go past its amount, in basis points of it (0: not
-- at all; at most 20 %).
ALTER TABLE transfers
    ADD COLUMN over_capture_bps integer NOT NULL DEFAULT 0
        CHECK (over_capture_bps BETWEEN 0 AND 2000),
    -- A hold's steps after its creation, oldest first: captures, increments, extensions
    -- and the step that ended it, each {"kind", "amount_minor", "at", "request_id"[,
    -- "expires_at"]}. NULL for an immediate transfer, and for a hold that ended before
    -- this column existed (its one step is read from finalized_at and its state).
    ADD COLUMN hold_steps jsonb CHECK (jsonb_typeof(hold_steps) = 'array');

DO $$
DECLARE
    found text;
BEGIN
    -- The first migration's unnamed checks that a hold posts once and never past its
    -- amount, and its entry kinds, found by what they say.
    FOR found IN
        SELECT conname FROM pg_constraint
        WHERE conrelid = 'transfers'::regclass AND contype = 'c'
          AND (pg_get_constraintdef(oid) LIKE '%(posted_amount_minor <= amount_minor)%'
               OR pg_get_constraintdef(oid) LIKE '%(posted_amount_minor > 0)%')
    LOOP
        EXECUTE format('ALTER TABLE transfers DROP CONSTRAINT %I', found);
    END LOOP;
    EXECUTE (SELECT format('ALTER TABLE entries DROP CONSTRAINT %I', conname)
             FROM pg_constraint
             WHERE conrelid = 'entries'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%PENDING_RELEASED%');
END
$$;

-- Invariant 5, for holds captured in several steps: what was captured never passes the
-- amount plus the tolerance; an open hold still holds something (a capture that takes
-- all that is held ends it); an ended transfer is POSTED exactly when money moved.
ALTER TABLE transfers
    ADD CONSTRAINT transfers_captured_within_tolerance CHECK (
        posted_amount_minor >= 0
        AND posted_amount_minor::numeric
            <= amount_minor + floor(amount_minor::numeric * over_capture_bps / 10000)),
    ADD CONSTRAINT transfers_open_hold_holds_something
        CHECK (state <> 'PENDING' OR posted_amount_minor < amount_minor),
    ADD CONSTRAINT transfers_posted_when_money_moved
        CHECK (state = 'PENDING' OR (state = 'POSTED') = (posted_amount_minor > 0));

-- CAPTURED: a capture, moving its amount from the pending total to the posted one in one
-- entry (the statement never shows a hold released before its money posted).
ALTER TABLE entries ADD CONSTRAINT entries_kind
    CHECK (kind IN ('POSTED', 'PENDING', 'PENDING_RELEASED', 'CAPTURED'));

-- The events of the new steps (docs/events.md).
ALTER TABLE events
    DROP CONSTRAINT events_type_check,
    ADD CONSTRAINT events_type_check CHECK (type IN (
        'ACCOUNT_CREATED', 'ACCOUNT_UPDATED', 'ACCOUNT_FROZEN', 'ACCOUNT_UNFROZEN',
        'ACCOUNT_CLOSED', 'TRANSFER_CREATED', 'TRANSFER_POSTED', 'TRANSFER_VOIDED',
        'TRANSFER_EXPIRED', 'TRANSFER_REVERSED', 'BATCH_COMMITTED', 'FUNDS_RELEASED',
        'BALANCE_MONITOR_TRIGGERED', 'BALANCE_MONITOR_CLEARED', 'PAYOUT_CREATED',
        'PAYOUT_PROCESSING', 'PAYOUT_POSTED', 'PAYOUT_FAILED', 'PAYOUT_CANCELED',
        'PAYOUT_RETURNED', 'INBOUND_TRANSFER_RECEIVED', 'INBOUND_TRANSFER_RETURNED',
        'TRANSFER_CAPTURED', 'TRANSFER_INCREMENTED', 'TRANSFER_EXTENDED'));
