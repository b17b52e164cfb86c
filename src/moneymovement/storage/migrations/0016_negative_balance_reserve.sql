-- The negative-balance reserve (docs/platforms.md): a holder's account may name a
-- platform account of the same currency that covers a reversal the account cannot pay.
-- The cover is a transfer from the reserve to the account, and the account then owes the
-- reserve what it covered (reserve_debt_minor) until later credits pay it back, each
-- repayment a transfer to the reserve. The currency is part of the reference, so the
-- database itself refuses a reserve of another currency.
ALTER TABLE accounts
    ADD COLUMN negative_balance_reserve_account_id text,
    ADD COLUMN reserve_debt_minor bigint NOT NULL DEFAULT 0
        CONSTRAINT accounts_reserve_debt_not_negative CHECK (reserve_debt_minor >= 0),
    ADD CONSTRAINT accounts_reserve_fkey
        FOREIGN KEY (tenant_id, negative_balance_reserve_account_id, currency_code)
        REFERENCES accounts (tenant_id, account_id, currency_code),
    ADD CONSTRAINT accounts_reserve_not_self
        CHECK (negative_balance_reserve_account_id <> account_id),
    -- A debt is owed to a reserve, and the reserve is not removed while it is owed.
    ADD CONSTRAINT accounts_debt_has_reserve
        CHECK (reserve_debt_minor = 0 OR negative_balance_reserve_account_id IS NOT NULL),
    -- An account is not closed while it owes its reserve.
    ADD CONSTRAINT accounts_closed_without_debt
        CHECK (state <> 'CLOSED' OR reserve_debt_minor = 0);

-- Which transfers are the reserve's own: a COVER (reserve to account, the debt rises by
-- its amount) or a RECOVERY (account to reserve, the debt falls by it). verify sums them
-- against each account's debt; a caller's metadata could not be trusted for that.
ALTER TABLE transfers
    ADD COLUMN reserve_movement text
        CONSTRAINT transfers_reserve_movement CHECK (reserve_movement IN ('COVER', 'RECOVERY'));
-- An account's covers and its recoveries, for the as-of balance read's sum of its debt.
CREATE INDEX transfers_reserve_covers ON transfers (tenant_id, credit_account_id)
    WHERE reserve_movement = 'COVER';
CREATE INDEX transfers_reserve_recoveries ON transfers (tenant_id, debit_account_id)
    WHERE reserve_movement = 'RECOVERY';
-- What accounts owe a reserve, read when it is to be closed (lock_batch): never while owed.
CREATE INDEX accounts_owing_reserve ON accounts (tenant_id, negative_balance_reserve_account_id)
    WHERE reserve_debt_minor > 0;
